package main

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/access"
	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// httpGet returns the body of a GET of url.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url) //nolint:noctx // a test against a local admin port
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startPhoneWith is startPhone with extra flags.
func startPhoneWith(t *testing.T, dir string, srv *accessServer, user, device, pwFile string, extra ...string) *phone {
	t.Helper()
	args := append([]string{"phone", "--access", srv.addr, "--ca", srv.ca, "--user", user, "--device", device,
		"--password-file", pwFile, "--admin", "127.0.0.1:0", "--tone", "440", "--auto-answer"}, extra...)
	p := start(t, user+"/"+device, dir, args...)
	m := p.waitStdout(t, phoneReady)
	return &phone{proc: p, id: m[1], signal: m[2], admin: m[3]}
}

// rawInviteTo logs in as user/device against the real access server (a
// real certificate: the access server vouches for who it is) and sends the
// real phone p a well-formed SRTP invite, returning the phone's answer
// (accept or reject).
func rawInviteTo(t *testing.T, dir string, srv *accessServer, user, device, password string, p *phone, callID string) wire.Message {
	t.Helper()
	caPath := srv.ca
	if !filepath.IsAbs(caPath) {
		caPath = filepath.Join(dir, caPath)
	}
	roots, err := pki.LoadCAFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	client, err := access.Login(ctx, access.ClientConfig{Addr: srv.addr, Roots: roots, User: user, Device: device,
		Password: password, SignalAddr: netip.MustParseAddrPort("127.0.0.1:9")})
	if err != nil {
		t.Fatalf("login %s/%s: %v", user, device, err)
	}
	defer client.Close()
	peer, err := pki.ParseIdentity(p.id)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := tls.Dial("tcp", p.signal, pki.EndpointClientConfig(client.Certificate, roots, peer, time.Now))
	if err != nil {
		t.Fatalf("dial %s at %s: %v", p.id, p.signal, err)
	}
	defer nc.Close()
	conn := wire.NewConn(nc, 0)
	inv := &wire.Invite{CallID: callID, From: user + "/" + device, To: p.id, Codecs: []string{"PCMU"},
		Media: wire.Media{Addr: "127.0.0.1:9", SSRC: 1, SRTPKey: make([]byte, wire.SRTPKeyLen), PtimeMS: 20}}
	if err := conn.Send(inv, time.Second); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(runTimeout))
	for {
		m, err := conn.Recv()
		if err != nil {
			t.Fatalf("waiting for %s's answer: %v", p.id, err)
		}
		switch m.(type) {
		case *wire.Accept, *wire.Reject:
			return m
		}
	}
}

// TestE2EPhoneAnswersBuddiesOnly (issue 11 §1 item 2): a real `baton
// phone` refuses an invite from an authenticated user who is not its
// buddy, with a forbidden reject that says so, and keeps no call; its own
// `ctl call` to that user is refused too (one rule both ways). With
// --accept-from anyone it answers. Buddies and the user's own other
// devices are answered by default.
func TestE2EPhoneAnswersBuddiesOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := addUsers(t, dir, "data", "alice", "bob", "mallory")
	mustBaton(t, dir, "buddy", "add", "alice", "bob", "--data-dir", "data")
	srv := startAccess(t, "access", dir, "data", "127.0.0.1:0")
	laptop := startPhoneWith(t, dir, srv, "alice", "laptop", pw["alice"])
	open := startPhoneWith(t, dir, srv, "bob", "mobile", pw["bob"], "--accept-from", "anyone")

	m := rawInviteTo(t, dir, srv, "mallory", "evil", "mallory-secret", laptop, "e2e-nb-1")
	rej, ok := m.(*wire.Reject)
	if !ok || rej.Code != wire.CodeForbidden || !strings.Contains(rej.Reason, "not a buddy") {
		t.Fatalf("alice's phone answered a non-buddy's invite with %T %+v, want a forbidden reject saying not a buddy", m, m)
	}
	if rows := table(t, mustCtl(t, dir, laptop.admin, "calls").stdout); len(rows) != 0 {
		t.Errorf("the refused invite left calls on alice's phone: %v", rows)
	}
	if metrics := httpGet(t, "http://"+laptop.admin+"/metrics"); !strings.Contains(metrics, `reason="not-buddy"} 1`) {
		t.Errorf("the refusal is not counted in the metrics:\n%s", metrics)
	}
	// The same rule for alice's own call to mallory.
	if r := ctl(t, dir, laptop.admin, "call", "mallory"); r.code == 0 || !strings.Contains(r.stdout+r.stderr, "not a buddy") {
		t.Errorf("ctl call to a non-buddy: want a refusal saying not a buddy\n%s", r)
	}

	// --accept-from anyone answers the same invite.
	if m := rawInviteTo(t, dir, srv, "mallory", "evil", "mallory-secret", open, "e2e-any-1"); m.Type() != wire.TypeAccept {
		t.Errorf("bob's phone with --accept-from anyone answered %+v", m)
	}
	waitCallState(t, dir, open.admin, "e2e-any-1", "active")

	// A buddy is answered, and so is another device of alice's own.
	desk := startPhoneWith(t, dir, srv, "alice", "desk", pw["alice"])
	waitOnlineBuddy(t, dir, desk.admin, "alice/laptop")
	id := dial(t, dir, desk.admin, "alice/laptop")
	waitCallState(t, dir, laptop.admin, id, "active")
	mustCtl(t, dir, desk.admin, "hangup", id)
	waitCallState(t, dir, laptop.admin, id, "ended")
	waitOnlineBuddy(t, dir, laptop.admin, "bob/mobile")
	mustCtl(t, dir, open.admin, "hangup", "e2e-any-1")
	id = dial(t, dir, laptop.admin, "bob/mobile")
	waitCallState(t, dir, open.admin, id, "active")
}
