package gateway

import (
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/baton-voice/baton/codecs"
)

// legBench is a leg with a phone on loopback whose packets are prebuilt,
// so that sending one allocates nothing in the test itself.
type legBench struct {
	l     *leg
	phone *net.UDPConn
	to    netip.AddrPort
	pkt   []byte
	seq   uint16
	dst   []byte
	pcm   []int16
	// polled: the leg is polled (audio.Poller) as a media session polls
	// it, and its reader goroutine has handed the socket over.
	polled bool
}

// poll makes the leg polled: Poll until the reader has handed the
// socket over (after the next packet it reads).
func (b *legBench) poll(tb testing.TB, call codecs.Codec) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.l.Poll()
		b.receive(tb, call)
		b.l.pollMu.Lock()
		polled := b.l.polled
		b.l.pollMu.Unlock()
		if polled {
			b.polled = true
			return
		}
		if time.Now().After(deadline) {
			tb.Fatal("the leg's reader does not hand the socket to the pollers")
		}
	}
}

func newLegBench(tb testing.TB, phoneCodec codecs.Codec, pt uint8) *legBench {
	tb.Helper()
	l, err := openLeg(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = l.Close() })
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	// Drain what the leg sends to the phone, so its socket buffer never
	// fills (a full buffer would drop, not block, but keep it honest).
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
		}
	}()
	phone := c.LocalAddr().(*net.UDPAddr).AddrPort()
	l.setRemote(phoneCodec, pt, -1, phone, phone.Addr(), true)
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SSRC: 9}, Payload: make([]byte, 160)}
	b, err := p.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return &legBench{l: l, phone: c, to: l.LocalAddr(), pkt: b, dst: make([]byte, 400), pcm: make([]int16, 160)}
}

// receive sends one packet from the phone and waits until the leg has
// taken it, then reads one 20 ms frame out (as payload when call is the
// phone's codec, else as PCM), as the media engine would.
func (b *legBench) receive(tb testing.TB, call codecs.Codec) {
	want := b.l.stats.Received.Load() + 1
	b.seq++
	b.pkt[2], b.pkt[3] = byte(b.seq>>8), byte(b.seq)
	if _, err := b.phone.WriteToUDPAddrPort(b.pkt, b.to); err != nil {
		tb.Fatal(err)
	}
	for b.l.stats.Received.Load() < want {
		if b.polled {
			// The media session's tick: the leg drains its socket on
			// this goroutine (the reader has handed it over).
			b.l.Poll()
			continue
		}
		if runtime.GOMAXPROCS(0) == 1 {
			// AllocsPerRun runs on one P: park, so that the scheduler
			// polls the network for the leg's reader.
			time.Sleep(10 * time.Microsecond)
		} else {
			runtime.Gosched()
		}
	}
	if _, ok, err := b.l.ReadPayload(call, 160, b.dst); err != nil {
		tb.Fatal(err)
	} else if !ok {
		if err := b.l.ReadFrame(b.pcm); err != nil {
			tb.Fatal(err)
		}
	}
}

// send hands one 20 ms frame of the call to the leg, as the media engine
// does: as payload first, as PCM when the leg declines.
func (b *legBench) send(tb testing.TB, call codecs.Codec) {
	ok, err := b.l.WritePayload(call, 160, b.dst[:160])
	if err != nil {
		tb.Fatal(err)
	}
	if !ok {
		if err := b.l.WriteFrame(b.pcm); err != nil {
			tb.Fatal(err)
		}
	}
}

var legBenchModes = []struct {
	name   string
	call   codecs.Codec
	polled bool
}{
	{"relay", codecs.PCMU(), false},     // PCMU phone, PCMU call: passthrough
	{"transcode", codecs.PCMA(), false}, // PCMU phone, PCMA call: through PCM
	// relay-polled: the phone's packet taken by Poll on the caller's
	// goroutine (the media session's tick), no wake-up of the reader.
	{"relay-polled", codecs.PCMU(), true},
}

// The SIP leg's per-packet paths allocate nothing: receive (socket read,
// parse, latch check, FIFO) plus the frame read of the engine, and send
// (payload or encode, marshal, socket write), both with and without
// transcoding. Allocations anywhere in the process count (AllocsPerRun
// reads the global counter), so the leg's read goroutine is included.
func TestLegAllocs(t *testing.T) {
	for _, m := range legBenchModes {
		b := newLegBench(t, codecs.PCMU(), 0)
		for range 10 { // past the prebuffer and the first latch
			b.receive(t, m.call)
		}
		if a := leastAllocs(100, func() { b.receive(t, m.call) }); a != 0 {
			t.Errorf("%s: receive path: %v allocations per packet", m.name, a)
		}
		if a := leastAllocs(500, func() { b.send(t, m.call) }); a != 0 {
			t.Errorf("%s: send path: %v allocations per packet", m.name, a)
		}
		b.poll(t, m.call)
		if a := leastAllocs(100, func() { b.receive(t, m.call) }); a != 0 {
			t.Errorf("%s: polled receive path: %v allocations per packet", m.name, a)
		}
		if m.name == "relay" && b.l.stats.Passed.Load() == 0 {
			t.Errorf("relay: nothing passed through")
		}
		if m.name == "transcode" && b.l.stats.Passed.Load() != 0 {
			t.Errorf("transcode: %d frames passed through", b.l.stats.Passed.Load())
		}
	}
}

// leastAllocs is the least of three testing.AllocsPerRun measurements:
// AllocsPerRun counts the whole process, and goroutines other tests left
// behind (servers shutting down) may allocate during one of them; an
// allocation on the measured path shows in all three.
func leastAllocs(runs int, f func()) float64 {
	least := testing.AllocsPerRun(runs, f)
	for range 2 {
		least = min(least, testing.AllocsPerRun(runs, f))
	}
	return least
}

// BenchmarkLegReceive is one RTP packet from the phone through the leg to
// the frame the media engine reads (loopback socket included).
func BenchmarkLegReceive(b *testing.B) {
	for _, m := range legBenchModes {
		b.Run(m.name, func(b *testing.B) {
			lb := newLegBench(b, codecs.PCMU(), 0)
			for range 10 {
				lb.receive(b, m.call)
			}
			if m.polled {
				lb.poll(b, m.call)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				lb.receive(b, m.call)
			}
		})
	}
}

// BenchmarkLegSend is one frame from the media engine to an RTP packet to
// the phone (loopback socket write included).
func BenchmarkLegSend(b *testing.B) {
	for _, m := range legBenchModes {
		b.Run(m.name, func(b *testing.B) {
			lb := newLegBench(b, codecs.PCMU(), 0)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				lb.send(b, m.call)
			}
		})
	}
}

// A polled leg (audio.Poller, as its media session polls it) leaves its
// socket to the polls: the reader goroutine no longer reads, each Poll
// takes what the phone sent; when polls stop for legPollLease the reader
// reads the socket again, so the phone's packets are never left unread.
func TestLegPolled(t *testing.T) {
	t.Parallel()
	b := newLegBench(t, codecs.PCMU(), 0)
	b.receive(t, codecs.PCMU()) // latch, read by the reader goroutine
	b.poll(t, codecs.PCMU())
	got := b.l.stats.Received.Load()
	b.seq++
	b.pkt[2], b.pkt[3] = byte(b.seq>>8), byte(b.seq)
	if _, err := b.phone.WriteToUDPAddrPort(b.pkt, b.to); err != nil {
		t.Fatal(err)
	}
	time.Sleep(legPollLease / 4) // polls still fresh: nobody else reads
	if n := b.l.stats.Received.Load(); n != got {
		t.Fatalf("polled leg: the reader read the phone's packet (received %d, want %d)", n, got)
	}
	b.l.Poll()
	if n := b.l.stats.Received.Load(); n != got+1 {
		t.Fatalf("after Poll: received %d, want %d", n, got+1)
	}
	// Polls stop (the call ended, a transfer took the audio elsewhere):
	// the reader takes the socket back.
	b.polled = false
	time.Sleep(2 * legPollLease)
	got = b.l.stats.Received.Load()
	b.seq++
	b.pkt[2], b.pkt[3] = byte(b.seq>>8), byte(b.seq)
	if _, err := b.phone.WriteToUDPAddrPort(b.pkt, b.to); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.l.stats.Received.Load() == got {
		if time.Now().After(deadline) {
			t.Fatal("polls stopped: the phone's packet is not read within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	b.l.pollMu.Lock()
	polled := b.l.polled
	b.l.pollMu.Unlock()
	if polled {
		t.Fatal("the reader did not take the socket back after polls stopped")
	}
}
