package endpoint

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/access"
	"github.com/baton-voice/baton/p2p/media"
	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// rawCall has the raw client call p (which auto-answers) with real SRTP
// media from a media.Session the test owns.
func rawCall(t *testing.T, n *network, from string, p *party) (*wire.Conn, *media.Session, string) {
	t.Helper()
	user, dev, _ := cut(from)
	client := n.rawLogin(t, user, dev)
	conn := n.rawDial(t, client, p)
	keys, err := media.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	sess, err := media.Open(context.Background(), media.Config{
		Local: netip.MustParseAddrPort("127.0.0.1:0"),
		Codec: codecs.PCMU(),
	})
	if err != nil {
		t.Fatal(err)
	}
	local := sess.LocalAddr()
	_ = sess.Close()
	callID := "raw-" + dev
	inv := &wire.Invite{CallID: callID, From: from, To: p.Identity().String(), Codecs: []string{"PCMU"},
		Media: wire.Media{Addr: local.String(), SSRC: 1234, SRTPKey: keys.Bytes(), PtimeMS: 20}}
	if err := conn.Send(inv, time.Second); err != nil {
		t.Fatal(err)
	}
	acc := recvUntil(t, conn, wire.TypeAccept).(*wire.Accept)
	recv, err := media.KeysFromBytes(acc.Media.SRTPKey)
	if err != nil {
		t.Fatal(err)
	}
	sess, err = media.Open(context.Background(), media.Config{
		Local: local, Codec: codecs.PCMU(), SendKeys: &keys, RecvKeys: &recv,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sess.Close() })
	sess.SetRemote(netip.MustParseAddrPort(acc.Media.Addr))
	sess.Start()
	p.waitState(t, callID, "active")
	return conn, sess, callID
}

func cut(id string) (string, string, bool) {
	pid, err := pki.ParseIdentity(id)
	return pid.User, pid.Device, err == nil
}

// rawFrame writes a frame with an explicit sequence number, bypassing
// wire.Conn's encoder, to send what a correct peer never would.
func rawFrame(t *testing.T, c *wire.Conn, typ wire.Type, seq uint64, payload string) {
	t.Helper()
	if _, err := c.NetConn().Write(wire.AppendFrame(nil, wire.Frame{Type: typ, Seq: seq, Payload: []byte(payload)})); err != nil {
		t.Fatal(err)
	}
}

func TestMalformedSignalingKeepsCall(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	alice := n.start("alice", "laptop", autoAnswer)
	conn, _, id := rawCall(t, n, "bob/raw", alice)

	// A frame whose JSON is broken: answered with an error, call goes on.
	rawFrame(t, conn, wire.TypeBye, 2, `{"call_id": `)
	if e := recvUntil(t, conn, wire.TypeError).(*wire.Error); e.Code != wire.CodeBadRequest {
		t.Errorf("error code %s, want bad-request", e.Code)
	}
	// An unknown message type: same.
	rawFrame(t, conn, wire.Type(999), 3, `{}`)
	recvUntil(t, conn, wire.TypeError)
	// A well-formed message that makes no sense here: same.
	rawFrame(t, conn, wire.TypeRinging, 4, `{"call_id":"`+id+`"}`)
	if e := recvUntil(t, conn, wire.TypeError).(*wire.Error); !contains(e.Message, "unexpected ringing") {
		t.Errorf("error %q, want it to name the unexpected message", e.Message)
	}
	if info, _ := alice.Call(id); info.State != "active" {
		t.Fatalf("call is %s after bad messages, want active", info.State)
	}
	// And a proper bye still ends it.
	rawFrame(t, conn, wire.TypeBye, 5, `{"call_id":"`+id+`","reason":"done"}`)
	if got := alice.waitState(t, id, "ended"); got.EndReason != "remote hangup: done" {
		t.Errorf("end reason %q", got.EndReason)
	}
}

func TestSequenceViolationKeepsActiveCallOnMedia(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	alice := n.start("alice", "laptop", autoAnswer, func(c *Config) { c.MediaTimeout = 2 * time.Second })
	conn, sess, id := rawCall(t, n, "bob/raw", alice)
	// A replayed sequence number breaks the signaling stream: the
	// connection is dropped, but the call lives on while media flows.
	rawFrame(t, conn, wire.TypeBye, 1, `{"call_id":"`+id+`"}`)
	alice.next(t, "call.signaling-lost")
	before := alice.mustCall(t, id).Media.PacketsReceived
	time.Sleep(3 * time.Second) // past a media timeout: media flowing keeps the call
	info := alice.mustCall(t, id)
	if info.State != "active" || info.Media.PacketsReceived <= before {
		t.Fatalf("call %s with %d packets (had %d): want active and still receiving", info.State, info.Media.PacketsReceived, before)
	}
	// When the media stops too, the watchdog ends the call.
	_ = sess.Close()
	if got := alice.waitState(t, id, "ended"); !contains(got.EndReason, "no media") {
		t.Errorf("end reason %q", got.EndReason)
	}
}

func (p *party) mustCall(t *testing.T, id string) CallInfo {
	t.Helper()
	info, err := p.Call(id)
	if err != nil {
		t.Fatal(err)
	}
	if info.Media == nil {
		t.Fatalf("call %s has no media info", id)
	}
	return info
}

func TestInviteChecks(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	alice := n.start("alice", "laptop", autoAnswer)
	mallory := n.rawLogin(t, "mallory", "evil")
	carol := n.rawLogin(t, "carol", "raw") // a buddy of alice's
	media := wire.Media{Addr: "127.0.0.1:9", SSRC: 1, SRTPKey: make([]byte, wire.SRTPKeyLen), PtimeMS: 20}
	cases := []struct {
		name string
		from *access.Client
		msg  wire.Message
		want wire.ErrorCode
	}{
		// A peer presenting another user's identity: the certificate says
		// mallory/evil, the invite claims to come from bob.
		{"from is not the certificate", mallory, &wire.Invite{CallID: "x1", From: "bob/mobile", To: "alice/laptop", Codecs: []string{"PCMU"}, Media: media}, wire.CodeIdentityMismatch},
		{"to is another endpoint", mallory, &wire.Invite{CallID: "x2", From: "mallory/evil", To: "alice/desk", Codecs: []string{"PCMU"}, Media: media}, wire.CodeNotFound},
		{"not a buddy", mallory, &wire.Invite{CallID: "x6", From: "mallory/evil", To: "alice/laptop", Codecs: []string{"PCMU"}, Media: media}, wire.CodeForbidden},
		{"no common codec", carol, &wire.Invite{CallID: "x3", From: "carol/raw", To: "alice/laptop", Codecs: []string{"OPUS"}, Media: media}, wire.CodeUnsupported},
		{"plain RTP offered", carol, &wire.Invite{CallID: "x4", From: "carol/raw", To: "alice/laptop", Codecs: []string{"PCMU"}, Media: wire.Media{Addr: "127.0.0.1:9", SSRC: 1, PtimeMS: 20}}, wire.CodeBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := n.rawDial(t, tc.from, alice)
			if err := conn.Send(tc.msg, time.Second); err != nil {
				t.Fatal(err)
			}
			rej := recvUntil(t, conn, wire.TypeReject).(*wire.Reject)
			if rej.Code != tc.want {
				t.Errorf("reject code %s (%s), want %s", rej.Code, rej.Reason, tc.want)
			}
		})
	}
	t.Run("first message not an invite", func(t *testing.T) {
		conn := n.rawDial(t, mallory, alice)
		if err := conn.Send(&wire.Bye{CallID: "x5"}, time.Second); err != nil {
			t.Fatal(err)
		}
		if e := recvUntil(t, conn, wire.TypeError).(*wire.Error); !contains(e.Message, "first message must be invite") {
			t.Errorf("error %q", e.Message)
		}
	})
	t.Run("garbage after the handshake", func(t *testing.T) {
		conn := n.rawDial(t, mallory, alice)
		if _, err := conn.NetConn().Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		for {
			if _, err := conn.Recv(); err != nil {
				break // the endpoint closed the connection
			}
		}
	})
	if calls := alice.Calls(); len(calls) != 0 {
		t.Fatalf("refused invites left calls behind: %+v", calls)
	}
	// After all that, a proper call still works.
	bob := n.start("bob", "mobile")
	establish(t, bob, alice)
}

func TestForgedAndExpiredCredentials(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	alice := n.start("alice", "laptop")
	reg := prometheus.NewRegistry()
	if err := alice.Register(reg); err != nil {
		t.Fatal(err)
	}
	otherCA, err := pki.LoadOrCreateCA(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert := func(ca *pki.CA, notBefore time.Time, ttl time.Duration) *tls.Certificate {
		key, err := pki.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		der, _, err := ca.IssueEndpoint(key.Public(), pki.Identity{User: "bob", Device: "mobile"}, notBefore, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	cases := []struct {
		name string
		cert *tls.Certificate
	}{
		{"issued by another CA (forged)", cert(otherCA, time.Now(), time.Hour)},
		{"expired", cert(n.srv.CA(), time.Now().Add(-3*time.Hour), time.Hour)},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := pki.EndpointClientConfig(func() (*tls.Certificate, error) { return tc.cert, nil }, n.srv.CA().Pool(), alice.Identity(), time.Now)
			nc, err := tls.Dial("tcp", alice.SignalAddr().String(), cfg)
			if err == nil {
				// TLS 1.3: the server checks the client's certificate after
				// the client's side of the handshake is done; the refusal
				// shows on the first read.
				_ = nc.SetReadDeadline(time.Now().Add(wait))
				_, err = nc.Read(make([]byte, 1))
				_ = nc.Close()
			}
			if err == nil {
				t.Fatal("connection with a bad credential was accepted")
			}
			want := float64(i + 1)
			eventually(t, "the refusal to be counted", func() bool {
				v, _ := findMetric(t, reg, "baton_endpoint_signaling_rejected_total", map[string]string{"reason": "handshake"})
				return v == want
			})
		})
	}
}

func TestRTPFromWrongSourceIsDropped(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	alice := n.start("alice", "laptop", autoAnswer)
	bob := n.start("bob", "mobile")
	_, ac := establish(t, bob, alice)
	target := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(ac.LocalMedia))
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	// Garbage, and a plausible RTP header, both from an address that is not
	// the call's peer.
	for _, p := range [][]byte{[]byte("not rtp at all"), {0x80, 0x00, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 0xff, 0xff}} {
		for i := 0; i < 5; i++ {
			if _, err := u.WriteToUDP(p, target); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, "10 dropped packets counted", func() bool {
		info, _ := alice.Call(ac.ID)
		return info.Media != nil && info.Media.WrongSource >= 10
	})
	before := alice.mustCall(t, ac.ID).Media.PacketsReceived
	eventually(t, "the call to keep receiving bob", func() bool {
		info := alice.mustCall(t, ac.ID)
		return info.State == "active" && info.Media.PacketsReceived > before+10
	})
}

func TestAccessServerLossKeepsCall(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	alice := n.start("alice", "laptop", autoAnswer)
	bob := n.start("bob", "mobile")
	_, ac := establish(t, bob, alice)
	// The access server is not on the call path.
	if err := n.srv.Close(); err != nil {
		t.Fatal(err)
	}
	bob.next(t, "logout")
	before := alice.mustCall(t, ac.ID).Media.PacketsReceived
	eventually(t, "media to flow without the access server", func() bool {
		info := alice.mustCall(t, ac.ID)
		return info.State == "active" && info.Media.PacketsReceived > before+25
	})
	if st := bob.Status(); st.LoggedIn {
		t.Errorf("bob still reports logged in after the access server went away")
	}
}
