package gateway

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/baton-voice/baton/codecs"
)

// rtpPeer is one UDP socket of a phone's media.
type rtpPeer struct {
	t    *testing.T
	conn *net.UDPConn
	seq  uint16
}

func newRTPPeer(t *testing.T) *rtpPeer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rtpPeer{t: t, conn: c}
}

func (p *rtpPeer) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (p *rtpPeer) send(to netip.AddrPort) {
	p.t.Helper()
	p.seq++
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: p.seq, SSRC: 7}, Payload: make([]byte, 160)}
	b, err := pkt.Marshal()
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.conn.WriteToUDPAddrPort(b, to); err != nil {
		p.t.Fatal(err)
	}
}

// heard reports whether a packet arrives within d.
func (p *rtpPeer) heard(d time.Duration) bool {
	_ = p.conn.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 1500)
	_, _, err := p.conn.ReadFromUDPAddrPort(buf)
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		p.t.Fatal(err)
	}
	return err == nil
}

// The leg honours the phone's direction (no RTP to a phone that put the
// call on hold), keeps its latch across a hold re-INVITE naming the same
// address, and latches onto the new address after a re-INVITE moves the
// media, ignoring the old one.
func TestLegHoldAndMove(t *testing.T) {
	t.Parallel()
	l, err := openLeg(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	pcmu := codecs.PCMU()
	lo := netip.MustParseAddr("127.0.0.1")
	a, b := newRTPPeer(t), newRTPPeer(t)
	frame := make([]int16, 160)
	send := func() {
		t.Helper()
		if err := l.WriteFrame(frame); err != nil {
			t.Fatal(err)
		}
	}
	received := func(want uint64, what string) {
		t.Helper()
		eventually(t, what, func() bool { return l.stats.Received.Load() == want })
	}

	l.setRemote(pcmu, 0, -1, a.addr(), lo, true)
	send()
	if !a.heard(time.Second) {
		t.Fatal("phone A heard nothing from an active leg")
	}
	a.send(l.LocalAddr())
	received(1, "the leg to take A's packet")

	// Hold: the phone's re-INVITE is sendonly, same address.
	l.setRemote(pcmu, 0, -1, a.addr(), lo, false)
	send()
	if a.heard(200 * time.Millisecond) {
		t.Fatal("the leg sent RTP to a phone that has the call on hold")
	}
	a.send(l.LocalAddr())
	received(2, "the leg to take A's packet on hold (latch kept)")

	// Resume from a new port: A's stragglers must not latch again.
	l.setRemote(pcmu, 0, -1, b.addr(), lo, true)
	a.send(l.LocalAddr())
	eventually(t, "A's straggler to be counted as a wrong source", func() bool { return l.stats.WrongSource.Load() == 1 })
	send()
	if !b.heard(time.Second) {
		t.Fatal("phone B heard nothing after the resume")
	}
	if a.heard(100 * time.Millisecond) {
		t.Fatal("the leg still sends to the address the phone moved away from")
	}
	b.send(l.LocalAddr())
	received(3, "the leg to latch onto B")
	a.send(l.LocalAddr())
	eventually(t, "A to stay a wrong source", func() bool { return l.stats.WrongSource.Load() == 2 })
	if got := l.stats.Received.Load(); got != 3 {
		t.Fatalf("received %d packets, want 3", got)
	}
}
