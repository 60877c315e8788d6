package media

import (
	"net"
	"testing"
	"time"

	"github.com/baton-voice/baton/codecs"
)

// countDatagrams reads what arrives at conn until d has passed.
func countDatagrams(t *testing.T, conn *net.UDPConn, d time.Duration) int {
	t.Helper()
	buf := make([]byte, 2048)
	n := 0
	_ = conn.SetReadDeadline(time.Now().Add(d))
	for {
		if _, _, err := conn.ReadFromUDPAddrPort(buf); err != nil {
			return n
		}
		n++
	}
}

// An address the peer merely named (not vouched for by the caller) gets
// consent probes only: one per ConsentProbeInterval, never the 50 packets
// a second of a call, until it proves it receives with an authenticated
// packet from that very address.
func TestUnconfirmedRemoteGetsProbesOnly(t *testing.T) {
	t.Parallel()
	requireLoopback(t, "127.0.0.5")
	send, recv := mustKeys(t), mustKeys(t)
	s := openSession(t, Config{Local: addr("127.0.0.1:0"), Codec: codecs.PCMU(), SendKeys: send, RecvKeys: recv, LatchAuthenticated: true})
	victim, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 5)})
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	s.SetRemoteUnconfirmed(victim.LocalAddr().(*net.UDPAddr).AddrPort())
	start := time.Now()
	s.Start()
	const window = 3 * time.Second // the probe of issue 11: 150 packets in 3 s before the fix
	got := countDatagrams(t, victim, window)
	elapsed := time.Since(start)
	// At most the first probe plus one per interval of the time that
	// passed (however slow the machine was).
	limit := 1 + int(elapsed/DefaultConsentProbeInterval)
	st := s.Stats()
	t.Logf("victim got %d datagrams in %v (limit %d); stats: probes %d, not sent %d", got, elapsed, limit, st.ConsentProbes, st.NotSentNoConsent)
	if got > limit {
		t.Errorf("an unconfirmed address received %d packets in %v, want at most %d consent probes", got, elapsed, limit)
	}
	if got == 0 || st.ConsentProbes == 0 || st.NotSentNoConsent == 0 || st.RemoteConfirmed {
		t.Errorf("want a few probes and the rest held back: got %d, %+v", got, st)
	}
}

// The same address is sent the full stream once an authenticated packet
// comes from it: latching as proof of consent. A packet that fails
// authentication proves nothing.
func TestUnconfirmedRemoteConfirmedByAuthenticatedPacket(t *testing.T) {
	t.Parallel()
	sendKeys, recvKeys := mustKeys(t), mustKeys(t)
	s := openSession(t, Config{Local: addr("127.0.0.1:0"), SendKeys: sendKeys, RecvKeys: recvKeys, LatchAuthenticated: true})
	peer := newRawPeer(t, "127.0.0.1", recvKeys)
	s.SetRemoteUnconfirmed(peer.addr)
	s.Start()
	if _, ok := peer.read(5 * time.Second); !ok {
		t.Fatal("not even a consent probe arrived")
	}
	// A forged packet (wrong key) from the peer's address.
	peer.send(s.LocalAddr(), peer.packet(peer.context(mustKeys(t)), testPT))
	eventually(t, "the forged packet to be counted", func() bool { return s.Stats().AuthFailed == 1 })
	if st := s.Stats(); st.RemoteConfirmed {
		t.Fatal("a packet that failed authentication confirmed the remote")
	}
	peer.send(s.LocalAddr(), peer.packet(peer.ctx, testPT))
	eventually(t, "the remote to be confirmed", func() bool { return s.Stats().RemoteConfirmed })
	// Now every tick sends: 10 packets arrive within a few ptimes, far
	// sooner than ten probes could.
	for i := range 10 {
		if _, ok := peer.read(DefaultConsentProbeInterval / 2); !ok {
			t.Fatalf("packet %d of the confirmed stream did not arrive", i)
		}
	}
}

// Consent lapses when nothing authenticated has come from the remote for
// ConsentTimeout: sending drops to probes and the lapse is counted; the
// peer's next authenticated packet restores it.
func TestConsentLapsesAndRecovers(t *testing.T) {
	t.Parallel()
	keysAB, keysBA := mustKeys(t), mustKeys(t)
	const timeout = 300 * time.Millisecond
	a := openSession(t, Config{Local: addr("127.0.0.1:0"), SendKeys: keysAB, RecvKeys: keysBA, ConsentTimeout: timeout})
	b := openSession(t, Config{Local: addr("127.0.0.1:0"), SendKeys: keysBA, RecvKeys: keysAB})
	a.SetRemote(b.LocalAddr())
	b.SetRemote(a.LocalAddr())
	a.Start()
	b.Start()
	eventually(t, "media both ways", func() bool { return a.Stats().PacketsReceived > 10 && b.Stats().PacketsReceived > 10 })
	b.SetSending(false) // b goes quiet: it no longer proves it is there
	eventually(t, "a's consent to lapse", func() bool { return a.Stats().ConsentLapses == 1 })
	st := a.Stats()
	if st.RemoteConfirmed {
		t.Fatalf("after the lapse: %+v", st)
	}
	held := st.NotSentNoConsent
	eventually(t, "a to hold frames back", func() bool { return a.Stats().NotSentNoConsent > held+5 })
	b.SetSending(true)
	eventually(t, "a's consent to come back", func() bool { return a.Stats().RemoteConfirmed })
	sent := a.Stats().PacketsSent
	eventually(t, "a to send at full rate again", func() bool { return a.Stats().PacketsSent > sent+10 })
	if got := a.Stats().ConsentLapses; got != 1 {
		t.Errorf("consent lapses %d, want 1", got)
	}
}

// A remote set with SetRemote (vouched for by the caller) gets the full
// stream at once, before anything came from it: a normal call's first
// packets are not held back.
func TestConfirmedRemoteSendsAtOnce(t *testing.T) {
	t.Parallel()
	s := openSession(t, Config{Local: addr("127.0.0.1:0")})
	peer := newRawPeer(t, "127.0.0.1", nil)
	s.SetRemote(peer.addr)
	s.Start()
	for i := range 5 {
		if _, ok := peer.read(DefaultConsentProbeInterval / 2); !ok {
			t.Fatalf("packet %d did not arrive", i)
		}
	}
	if st := s.Stats(); !st.RemoteConfirmed || st.ConsentProbes != 0 {
		t.Errorf("stats %+v", st)
	}
}
