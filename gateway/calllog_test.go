package gateway

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/sipbridge"
	"github.com/baton-voice/baton/sipbridge/sdp"
)

// records keeps the messages of the log records at or above a level.
type records struct {
	mu   sync.Mutex
	msgs []string
	min  slog.Level
}

func (r *records) Enabled(_ context.Context, l slog.Level) bool { return l >= r.min }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, rec.Level.String()+" "+rec.Message)
	r.mu.Unlock()
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func (r *records) since(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs[n:]...)
}

func (r *records) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// TestOneInfoLinePerCall: at info, a call through the gateway logs one
// line, "call ended", however many endpoints and bridges it runs through
// (here both: alice's desk phone calls bob's, two bridges and the two
// devices' endpoints in this process). Before, the same call logged eight
// (invite sent, ringing, call active and call ended at each endpoint, and
// call ended at each bridge): ~10 % of a call's CPU in the calls-per-second
// benchmark (docs/benchmarks.md §16b).
func TestOneInfoLinePerCall(t *testing.T) {
	t.Parallel()
	rec := &records{min: slog.LevelInfo}
	n := newTestNet(t, true, func(c *Config) {
		c.Logger = slog.New(rec)
		c.Accounts = append(c.Accounts, Account{SIPUser: "bobdesk", HA1: sipbridge.HA1("bobdesk", "baton.test", "bob-desk-secret"),
			User: "bob", Device: "desk", Password: "bob-p2p-secret"})
	})
	gw := n.gw.Addr("udp")
	alice := newPhone(t, gw, "alice", "desk-secret")
	bob := newPhone(t, gw, "bobdesk", "bob-desk-secret")
	for _, p := range []*phone{alice, bob} {
		if res := p.register(600); res.StatusCode != 200 {
			t.Fatalf("REGISTER %s: %d", p.user, res.StatusCode)
		}
	}
	eventually(t, "bob/laptop to see both desks online", func() bool { return online(n.bob, "alice/desk") && online(n.bob, "bob/desk") })
	la, stopA := alice.rtpLeg(660)
	defer stopA()
	lb, stopB := bob.rtpLeg(1000)
	defer stopB()
	before := rec.len()

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	go func() {
		select {
		case ds := <-bob.invites:
			o, err := sdp.ParseOffer(ds.InviteRequest.Body())
			if err != nil {
				t.Error(err)
				return
			}
			body, chosen, err := sdp.NewSession(9).Answer(o, sdp.Local{Addr: netip.MustParseAddr("127.0.0.1"), Port: int(lb.LocalAddr().Port()), Codecs: []string{"PCMU"}})
			if err != nil {
				t.Error(err)
				return
			}
			lb.setRemote(codecs.PCMU(), chosen.Codecs[0].PT, -1, netip.AddrPortFrom(o.Addr, uint16(o.Port)), netip.Addr{}, true)
			_ = ds.RespondSDP(body)
		case <-ctx.Done():
		}
	}()
	dialogs := sipgo.NewDialogClientCache(alice.cli, sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "127.0.0.1", Port: alice.port()}})
	dc, err := dialogs.Invite(ctx, alice.gwURI("bob+desk"), phoneSDP(t, la, "PCMU"), sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		t.Fatal(err)
	}
	if err := dc.WaitAnswer(ctx, sipgo.AnswerOptions{Username: "alice", Password: "desk-secret"}); err != nil {
		t.Fatalf("INVITE bob+desk: %v", err)
	}
	if err := dc.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	alice.useAnswer(la, dc.InviteResponse.Body())
	eventually(t, "audio at both desk phones", func() bool {
		return len(alice.heard.samples()) >= 1600 && len(bob.heard.samples()) >= 1600
	})
	if err := dc.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	// Over at both bridges and both endpoints.
	eventually(t, "the call to end everywhere", func() bool {
		if len(n.gw.Calls()) != 0 {
			return false
		}
		for _, u := range []string{"alice", "bobdesk"} {
			ep, ok := n.gw.Device(u)
			if !ok {
				return false
			}
			for _, c := range ep.Calls() {
				if c.State != endpoint.CallEnded.String() {
					return false
				}
			}
		}
		return true
	})
	got := rec.since(before)
	ended := 0
	for _, m := range got {
		if m == "INFO call ended" {
			ended++
		}
	}
	if len(got) != 1 || ended != 1 {
		t.Errorf("info lines for one call: %d (%s), want one \"call ended\"", len(got), strings.Join(got, "; "))
	}
}
