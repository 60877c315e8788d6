package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/baton-voice/baton/sipbridge/sdp"
)

// needSipp returns sipp's path, or skips on a developer machine without it
// (CI installs it and fails instead).
func needSipp(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sipp")
	if err != nil {
		if os.Getenv("CI") != "" || os.Getenv("BATON_REQUIRE_PEERS") != "" {
			t.Fatalf("sipp is not installed (.ci/deps.sh installs it): %v", err)
		}
		t.Skip("sipp is not installed; run .ci/deps.sh")
	}
	return p
}

// runSipp runs one scenario of testdata/sipp once against target.
func runSipp(sipp, dir, target, scenario string, args ...string) error {
	sf, err := filepath.Abs(filepath.Join("testdata", "sipp", scenario))
	if err != nil {
		return err
	}
	errFile := filepath.Join(dir, scenario+".errors")
	argv := append([]string{target, "-sf", sf, "-m", "1", "-timeout", "60s", "-nostdin", "-trace_err", "-error_file", errFile}, args...)
	cmd := exec.Command(sipp, argv...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		errs, _ := os.ReadFile(errFile)
		s := string(out)
		if len(s) > 3000 {
			s = s[len(s)-3000:]
		}
		return fmt.Errorf("sipp %s: %w\n%s\nerrors:\n%s", scenario, err, s, errs)
	}
	return nil
}

func freeUDP(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// The gateway puts a call on hold (Gateway.Hold: re-INVITE a=sendonly)
// while the phone (sipp) sends a re-INVITE of its own: the phone's gets
// 491 because ours is outstanding; the phone answers ours 491 too; the
// gateway waits 0-2 s (RFC 3261 §14.1, it does not own the Call-ID) and
// tries again, and the phone takes it (200 a=recvonly). The scenario fails
// on any other message.
func TestHoldGlareWithSipp(t *testing.T) {
	t.Parallel()
	sipp := needSipp(t)
	n := newTestNet(t, true)
	dir := t.TempDir()
	port := fmt.Sprint(freeUDP(t))
	target := n.gw.Addr("udp")
	if err := runSipp(sipp, dir, target, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret", "-i", "127.0.0.1", "-p", port); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob to see alice/desk online", func() bool { return online(n.bob, "alice/desk") })

	media := newRTPPeer(t)
	call := make(chan error, 1)
	go func() {
		call <- runSipp(sipp, dir, target, "call_gateway_hold.xml", "-s", "bob", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret",
			"-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(media.addr().Port()), "-i", "127.0.0.1", "-p", port)
	}()
	var id string
	eventually(t, "the phone's call to be active", func() bool {
		for _, c := range n.gw.Calls() {
			if c.State == "active" {
				id = c.SIPCallID
				return true
			}
		}
		return false
	})
	if err := n.gw.Hold(context.Background(), "no-such-call", true); !errors.Is(err, ErrNoSuchCall) {
		t.Errorf("Hold of an unknown call: %v, want ErrNoSuchCall", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	var err error
	for {
		// Until the phone's ACK confirms the dialog there is nothing to
		// re-INVITE.
		err = n.gw.Hold(ctx, id, true)
		if !errors.Is(err, ErrNotConfirmed) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("Hold took %v (one 491, a retry after 0-2 s)", time.Since(start))
	if err != nil {
		t.Fatalf("Hold: %v", err)
	}
	select {
	case err := <-call:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("sipp did not finish")
	}
	b := n.gw.Calls()
	if len(b) != 0 && !strings.EqualFold(b[0].State, "ended") {
		eventually(t, "the gateway to forget the call", func() bool { return len(n.gw.Calls()) == 0 })
	}
}

// The gateway holds and resumes a call it placed to the phone (the dialog
// its INVITE created): re-INVITEs a=sendonly then a=sendrecv, each with
// the o= version one up, each 200 ACKed in the dialog with the
// re-INVITE's CSeq, and the call stays up.
func TestHoldOutboundDialog(t *testing.T) {
	t.Parallel()
	n := newTestNet(t, false)
	p := newPhone(t, n.gw.Addr("udp"), "alice", "desk-secret")
	type reinvite struct {
		offer *sdp.Offer
		cseq  uint32
	}
	reinvites := make(chan reinvite, 4)
	acks := make(chan uint32, 8)
	p.srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		if to := req.To(); to != nil && to.Params.Has("tag") {
			o, err := sdp.ParseOffer(req.Body())
			if err != nil {
				_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad SDP", nil))
				return
			}
			reinvites <- reinvite{offer: o, cseq: req.CSeq().SeqNo}
			body, _, err := sdp.NewSession(9).Answer(o, sdp.Local{Addr: netip.MustParseAddr("127.0.0.1"), Port: 40000, Codecs: []string{"PCMU"}})
			if err != nil {
				t.Error(err)
				return
			}
			res := sip.NewSDPResponseFromRequest(req, body)
			res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "127.0.0.1", Port: p.port()}})
			_ = tx.Respond(res)
			return
		}
		ds, err := p.dialogs.ReadInvite(req, tx)
		if err != nil {
			return
		}
		p.invites <- ds
		<-ds.Context().Done()
	})
	p.srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
		acks <- req.CSeq().SeqNo
		_ = p.dialogs.ReadAck(req, tx)
	})
	if res := p.register(600); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d", res.StatusCode)
	}
	eventually(t, "bob to see alice/desk online", func() bool { return online(n.bob, "alice/desk") })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	out, err := n.bob.Dial(ctx, "alice/desk")
	if err != nil {
		t.Fatal(err)
	}
	var ds *sipgo.DialogServerSession
	select {
	case ds = <-p.invites:
	case <-ctx.Done():
		t.Fatal("the desk phone got no INVITE")
	}
	first, err := sdp.ParseOffer(ds.InviteRequest.Body())
	if err != nil {
		t.Fatal(err)
	}
	body, _, err := sdp.NewSession(7).Answer(first, sdp.Local{Addr: netip.MustParseAddr("127.0.0.1"), Port: 40000, Codecs: []string{"PCMU"}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ds.RespondSDP(body) }()
	eventually(t, "bob's call to be active", func() bool { c, _ := n.bob.Call(out.ID); return c.State == "active" })
	<-acks // the ACK of the call's 200
	id := ds.InviteRequest.CallID().Value()

	version := first.SessionVersion
	for _, step := range []struct {
		hold bool
		want sdp.Direction
	}{{true, sdp.SendOnly}, {false, sdp.SendRecv}} {
		if err := n.gw.Hold(ctx, id, step.hold); err != nil {
			t.Fatalf("Hold(%v): %v", step.hold, err)
		}
		ri := <-reinvites
		if ri.offer.Direction != step.want || ri.offer.SessionVersion != version+1 {
			t.Errorf("Hold(%v) offered a=%s o= version %d, want a=%s version %d", step.hold, ri.offer.Direction, ri.offer.SessionVersion, step.want, version+1)
		}
		version = ri.offer.SessionVersion
		select {
		case cseq := <-acks:
			if cseq != ri.cseq {
				t.Errorf("ACK CSeq %d for the re-INVITE's %d", cseq, ri.cseq)
			}
		case <-ctx.Done():
			t.Fatalf("no ACK for the 200 to the gateway's re-INVITE (hold %v)", step.hold)
		}
	}
	if c, _ := n.bob.Call(out.ID); c.State != "active" {
		t.Errorf("bob's call is %s after hold and resume", c.State)
	}
	if err := n.bob.Hangup(ctx, out.ID); err != nil {
		t.Fatal(err)
	}
}
