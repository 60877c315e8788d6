package endpoint

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/media"
	"github.com/baton-voice/baton/p2p/wire"
)

// Issue 11 §1 item 1: an invite that names a third party's address as the
// caller's media (here a UDP listener on 127.0.0.5, while the caller's
// signaling comes from 127.0.0.1) does not turn the phone into a traffic
// reflector. Before the fix the listener got the whole stream, 50 packets
// a second; now it gets at most one consent probe a second
// (media.DefaultConsentProbeInterval): the first at once, then one per
// interval, which is how a peer on another IP than its signaling gets the
// chance to prove it receives. A normal call on the same phone still
// flows both ways.
func TestInviteCannotAimMediaAtAThirdParty(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	alice := n.start("alice", "laptop", autoAnswer)
	victim, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 5)})
	if err != nil {
		t.Fatalf("this test needs 127.0.0.5 on the loopback interface: %v", err)
	}
	defer victim.Close()
	target := victim.LocalAddr().(*net.UDPAddr).AddrPort()

	// bob, a buddy, calls with a real certificate and a valid SRTP key,
	// but names the victim as his media address.
	client := n.rawLogin(t, "bob", "raw")
	conn := n.rawDial(t, client, alice)
	keys, err := media.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	inv := &wire.Invite{CallID: "reflect-1", From: "bob/raw", To: "alice/laptop", Codecs: []string{"PCMU"},
		Media: wire.Media{Addr: target.String(), SSRC: 4321, SRTPKey: keys.Bytes(), PtimeMS: 20}}
	start := time.Now() // before alice's media can start
	if err := conn.Send(inv, time.Second); err != nil {
		t.Fatal(err)
	}
	acc := recvUntil(t, conn, wire.TypeAccept).(*wire.Accept)
	// bob also sends an authenticated stream from his real address, as a
	// live call would: it proves 127.0.0.1:port is bob, not 127.0.0.5.
	recv, err := media.KeysFromBytes(acc.Media.SRTPKey)
	if err != nil {
		t.Fatal(err)
	}
	own, err := media.Open(context.Background(), media.Config{Local: netip.MustParseAddrPort("127.0.0.1:0"), Codec: codecs.PCMU(), SendKeys: &keys, RecvKeys: &recv})
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	own.SetRemote(netip.MustParseAddrPort(acc.Media.Addr))
	own.Start()

	const window = 3 * time.Second // issue 11's probe: 150 packets in 3 s
	got := 0
	buf := make([]byte, 2048)
	_ = victim.SetReadDeadline(start.Add(window))
	for {
		if _, _, err := victim.ReadFromUDPAddrPort(buf); err != nil {
			break
		}
		got++
	}
	elapsed := time.Since(start)
	limit := 1 + int(elapsed/media.DefaultConsentProbeInterval)
	info := alice.mustCall(t, "reflect-1")
	t.Logf("the third party got %d packets in %v (limit %d); alice's media: %+v", got, elapsed, limit, *info.Media)
	if got > limit {
		t.Errorf("the invite's third-party address got %d packets in %v: a reflector (want at most %d consent probes)", got, elapsed, limit)
	}
	if info.Media.RemoteConfirmed || info.Media.NotSentNoConsent == 0 {
		t.Errorf("alice's media to the named address: %+v, want it unconfirmed and held back", *info.Media)
	}
	if info.Media.PacketsReceived == 0 {
		t.Errorf("alice heard nothing of bob's own stream")
	}

	if err := conn.Send(&wire.Bye{CallID: "reflect-1"}, time.Second); err != nil {
		t.Fatal(err)
	}
	alice.waitState(t, "reflect-1", "ended")

	// A normal call still flows both ways at full rate.
	carol := n.start("carol", "desk", autoAnswer)
	cc, _ := establish(t, alice, carol)
	eventually(t, "media both ways on the normal call", func() bool {
		a, err1 := alice.Call(cc.ID)
		c, err2 := carol.Call(cc.ID)
		return err1 == nil && err2 == nil && a.Media != nil && c.Media != nil &&
			a.Media.PacketsReceived > 25 && c.Media.PacketsReceived > 25 && a.Media.RemoteConfirmed && c.Media.RemoteConfirmed
	})
}
