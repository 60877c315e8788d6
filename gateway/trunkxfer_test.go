package gateway

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/baton-voice/baton/codecs"
)

// The switch of a SIP leg from the transferor's P2P call to the
// transfer's new call (switchLeg, legView): the two calls' media engines
// write and read the leg at once around the switch; the phone (a real UDP
// socket) gets one stream, its sequence numbers and timestamps contiguous,
// the old call's audio before the switch and only the new call's after it,
// and the new call's audio is never sent before it. Run it with -race: the
// two engines share the leg's packetizer under sendMu.
func TestLegViewSwitch(t *testing.T) {
	t.Parallel()
	l, err := openLeg(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	phone := newRTPPeer(t)
	pcmu, _ := codecs.DefaultRegistry().Lookup("PCMU")
	l.setRemote(pcmu, 0, -1, phone.addr(), netip.Addr{}, true)
	view := &legView{l: l}
	frame := func(v int16) []int16 {
		f := make([]int16, 160)
		for i := range f {
			f[i] = v
		}
		return f
	}
	oldF, newF := frame(8000), frame(-8000)
	var oldByte, newByte [1]byte
	if _, err := pcmu.Encode(oldByte[:], oldF[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := pcmu.Encode(newByte[:], newF[:1]); err != nil {
		t.Fatal(err)
	}

	const perSide = 200
	var wg sync.WaitGroup
	switched := make(chan struct{})
	var viewOn atomic.Int64 // the new call's writes made once the view was on
	engine := func(write func([]int16) error, read func([]int16) error, f []int16, switchAt int) {
		defer wg.Done()
		in := make([]int16, 160)
		// The old call makes perSide writes and switches at the middle;
		// the new call writes until perSide/2 of its writes went out
		// with the view on, whatever the two engines' relative pace.
		for i := 0; switchAt >= 0 && i < perSide || switchAt < 0 && viewOn.Load() < perSide/2; i++ {
			if i == switchAt {
				l.relay(newPipe(8000), newPipe(8000))
				view.on.Store(true)
				close(switched)
			}
			if switchAt < 0 && view.on.Load() {
				viewOn.Add(1)
			}
			if err := write(f); err != nil {
				t.Error(err)
				return
			}
			if err := read(in); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	// The phone reads while the engines run: the ~200 packets left
	// unread until the end filled the socket's default receive buffer,
	// and a dropped one broke the stream this test checks (seen at load).
	var got []rtp.Packet
	var enginesDone atomic.Bool
	read := make(chan error, 1)
	go func() {
		buf := make([]byte, 1500)
		for phone.conn.SetReadDeadline(time.Now().Add(500*time.Millisecond)) == nil {
			n, _, err := phone.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if !enginesDone.Load() { // a slow start: keep waiting
					continue
				}
				break
			}
			var p rtp.Packet
			if err := p.Unmarshal(append([]byte(nil), buf[:n]...)); err != nil {
				read <- err
				return
			}
			got = append(got, p)
		}
		read <- nil
	}()
	wg.Add(2)
	go engine(l.WriteFrame, l.ReadFrame, oldF, perSide/2) // the transferor's call, which also switches
	go engine(view.WriteFrame, view.ReadFrame, newF, -1)  // the new call
	wg.Wait()
	enginesDone.Store(true)
	<-switched
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	if len(got) < perSide/2 {
		t.Fatalf("the phone got %d packets, want at least %d", len(got), perSide/2)
	}
	seenNew, olds, news := false, 0, 0
	for i, p := range got {
		if i > 0 {
			prev := got[i-1]
			if p.SSRC != prev.SSRC || p.SequenceNumber != prev.SequenceNumber+1 || p.Timestamp != prev.Timestamp+160 {
				t.Fatalf("packet %d: ssrc %x seq %d ts %d after ssrc %x seq %d ts %d: not one contiguous stream",
					i, p.SSRC, p.SequenceNumber, p.Timestamp, prev.SSRC, prev.SequenceNumber, prev.Timestamp)
			}
		}
		switch p.Payload[0] {
		case oldByte[0]:
			olds++
			if seenNew {
				t.Fatalf("packet %d: the old call's audio after the new call's", i)
			}
		case newByte[0]:
			news++
			seenNew = true
		default:
			t.Fatalf("packet %d: payload %x is neither call's", i, p.Payload[0])
		}
	}
	t.Logf("the phone got %d packets: %d of the old call, then %d of the new", len(got), olds, news)
	// The old call sends until its switch at the middle; the new call
	// from when the view is on (one write may race the switch).
	if olds != perSide/2 || news < perSide/2-1 || news > perSide/2+1 {
		t.Errorf("old %d, new %d packets: want %d of the old call and %d±1 of the new (its writes once the view was on)", olds, news, perSide/2, perSide/2)
	}
}
