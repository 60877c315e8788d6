package gateway

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtcp"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/sipbridge/sdp"
)

// legPair is two legs on loopback facing each other, as the gateway and a
// phone: each one's SDP view of the other says where its RTP and RTCP go.
func legPair(t *testing.T, mux, secure bool) (gw, phone *leg) {
	t.Helper()
	lo := netip.MustParseAddr("127.0.0.1")
	open := func() *leg {
		l, err := openLeg(lo)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		l.rtcp.interval.Store(int64(60 * time.Millisecond)) // before setRTCP starts the loop
		if secure {
			if err := l.initSRTP(sdp.SRTPRequired); err != nil {
				t.Fatal(err)
			}
		}
		return l
	}
	gw, phone = open(), open()
	wire := func(l, far *leg) {
		if secure {
			if err := l.setSRTP(sdp.Crypto{Tag: 1, Suite: sdp.AESCM128HMACSHA180, Key: far.srtpKey()}, true); err != nil {
				t.Fatal(err)
			}
		}
		o := &sdp.Offer{Addr: lo, Port: int(far.LocalAddr().Port()), RTCPMux: mux}
		if !mux {
			o.RTCPPort = far.rtcpPort()
		}
		l.setRemote(codecs.PCMU(), 0, -1, far.LocalAddr(), netip.Addr{}, true)
		l.setRTCP(o, 8000)
	}
	wire(gw, phone)
	wire(phone, gw)
	return gw, phone
}

// talk sends RTP both ways, one frame each per 20 ms, until cond holds
// or 10 s pass.
func talk(t *testing.T, a, b *leg, what string, cond func() bool) {
	t.Helper()
	frame := make([]int16, 160)
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: gateway %+v phone %+v", what, a.rtcpInfo(), b.rtcpInfo())
		}
		_ = a.WriteFrame(frame)
		_ = b.WriteFrame(frame)
		time.Sleep(20 * time.Millisecond)
	}
}

// RFC 3550 on a leg: SRs both ways with report blocks about each other's
// stream, plain, multiplexed (RFC 5761) and SRTCP (RFC 3711), with the
// round trip measured from LSR/DLSR; RTCP from a stranger is dropped and
// counted, an unparsable packet from the peer too, and on an SRTCP leg a
// plain RTCP packet fails authentication.
func TestLegRTCP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		mux, secure bool
	}{
		{name: "plain"},
		{name: "rtcp-mux", mux: true},
		{name: "srtcp", secure: true},
		{name: "srtcp rtcp-mux", mux: true, secure: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gw, phone := legPair(t, tc.mux, tc.secure)
			talk(t, gw, phone, "reports both ways with a round trip", func() bool {
				g, p := gw.rtcpInfo(), phone.rtcpInfo()
				return g.FarReports >= 2 && p.FarReports >= 2 && g.RTTMS > 0 && g.Received >= 2 && g.Sent >= 2
			})
			g := gw.rtcpInfo()
			t.Logf("gateway leg RTCP: %+v", g)
			if g.Mux != tc.mux || g.FarFractionLost != 0 || g.FarPacketsLost != 0 || g.WrongSource != 0 || g.Malformed != 0 || g.SRTCPAuthFailed != 0 {
				t.Errorf("gateway RTCP %+v: want mux %v, no loss, no drops", g, tc.mux)
			}
			if g.RTTMS > 1000 {
				t.Errorf("round trip on loopback %.1f ms", g.RTTMS)
			}

			// A stranger's RR, aimed at where the phone's RTCP arrives.
			target := gw.LocalAddr()
			if !tc.mux {
				target = netip.AddrPortFrom(target.Addr(), uint16(gw.rtcpPort()))
			}
			rr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 99}})
			stranger := newRTPPeer(t)
			if _, err := stranger.conn.WriteToUDPAddrPort(rr, target); err != nil {
				t.Fatal(err)
			}
			waitCount(t, "the stranger's RTCP to be dropped", func() uint64 { return gw.rtcpInfo().WrongSource }, 1)

			// From the peer's own RTCP address: garbage, and on an SRTCP
			// leg a plain report.
			from := phone.rtcp.conn
			if tc.mux {
				from = phone.conn
			}
			junk := []byte{0x80, 200, 0, 1, 0, 0}
			if _, err := from.WriteToUDPAddrPort(junk, target); err != nil {
				t.Fatal(err)
			}
			if tc.secure {
				waitCount(t, "junk to fail SRTCP authentication", func() uint64 { return gw.rtcpInfo().SRTCPAuthFailed }, 1)
				if _, err := from.WriteToUDPAddrPort(rr, target); err != nil {
					t.Fatal(err)
				}
				waitCount(t, "a plain RR to fail SRTCP authentication", func() uint64 { return gw.rtcpInfo().SRTCPAuthFailed }, 2)
			} else {
				waitCount(t, "junk to count as malformed", func() uint64 { return gw.rtcpInfo().Malformed }, 1)
			}
		})
	}
}

func waitCount(t *testing.T, what string, get func() uint64, want uint64) {
	t.Helper()
	eventually(t, what, func() bool { return get() >= want })
	if got := get(); got != want {
		t.Errorf("%s: %d, want %d", what, got, want)
	}
}

// The reception report block (RFC 3550 A.1, A.3): loss in the interval
// and in all, the extended highest sequence number across a wrap, and a
// late packet that does not count as new.
func TestRTCPReceptionBlock(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		seqs       []uint16
		lost       uint32
		fraction   uint8
		extHighest uint32
	}{
		{name: "no loss", seqs: []uint16{10, 11, 12, 13}, extHighest: 13},
		{name: "one of four lost", seqs: []uint16{10, 11, 13}, lost: 1, fraction: 256 / 4, extHighest: 13},
		{name: "wrap", seqs: []uint16{65534, 65535, 0, 1}, extHighest: 1<<16 + 1},
		{name: "late packet", seqs: []uint16{10, 12, 11, 13}, extHighest: 13},
		// A duplicate makes the cumulative loss negative (RFC 3550
		// §6.4.1: -1 in 24 bits), and the interval's fraction 0.
		{name: "duplicate", seqs: []uint16{10, 11, 11, 12}, lost: 0xffffff, extHighest: 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := &leg{}
			l.rtcp.clock = 8000
			now := time.Now()
			for i, s := range tc.seqs {
				l.rtcpOnRTP(5, s, uint32(160*i), now.Add(time.Duration(i)*20*time.Millisecond))
			}
			b := l.rtcp.rx.block(now)
			if b.TotalLost != tc.lost || b.FractionLost != tc.fraction || b.LastSequenceNumber != tc.extHighest || b.SSRC != 5 {
				t.Errorf("block %+v: want lost %d fraction %d highest %d", b, tc.lost, tc.fraction, tc.extHighest)
			}
		})
	}
}

// FuzzLegRTCP feeds arbitrary packets to a latched leg's RTCP path, plain
// and multiplexed: it never panics, and each packet ends in exactly one
// counter (taken, malformed, or dropped).
func FuzzLegRTCP(f *testing.F) {
	sr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.SenderReport{SSRC: 1, NTPTime: 1 << 40, Reports: []rtcp.ReceptionReport{{SSRC: 2, FractionLost: 3, TotalLost: 4, LastSenderReport: 5, Delay: 6}}},
		rtcp.NewCNAMESourceDescription(1, "phone")})
	rr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 1}, &rtcp.Goodbye{Sources: []uint32{1}}})
	f.Add(sr, false)
	f.Add(rr, true)
	f.Add([]byte{0x80, 200, 0, 0}, false)
	l, err := openLeg(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = l.Close() })
	peer := netip.MustParseAddrPort("127.0.0.1:40000")
	l.setRemote(codecs.PCMU(), 0, -1, peer, netip.Addr{}, true)
	l.mu.Lock()
	l.latched = true
	l.mu.Unlock()
	f.Fuzz(func(t *testing.T, data []byte, muxed bool) {
		before := l.rtcpInfo()
		l.handleRTCP(data, peer, muxed)
		after := l.rtcpInfo()
		total := func(i *RTCPInfo) uint64 { return i.Received + i.Malformed + i.WrongSource + i.SRTCPAuthFailed }
		if total(after) != total(before)+1 {
			t.Fatalf("one packet moved the counters from %+v to %+v", before, after)
		}
	})
}

// BenchmarkRTCPHooks is the per-packet cost RTCP adds to the leg's hot
// path: the reception statistics readLoop keeps per RTP packet (A.1,
// A.8) and the SR counters the send path keeps.
func BenchmarkRTCPHooks(b *testing.B) {
	b.Run("on-rtp", func(b *testing.B) {
		l := &leg{}
		l.rtcp.clock = 8000
		now := time.Now()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			l.rtcpOnRTP(5, uint16(i), uint32(160*i), now.Add(time.Duration(i)*20*time.Millisecond))
		}
	})
	b.Run("on-send", func(b *testing.B) {
		l := &leg{}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			l.rtcpOnSend(uint32(160*i), 160)
		}
	})
}
