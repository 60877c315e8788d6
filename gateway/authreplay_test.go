package gateway

import (
	"context"
	"testing"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// TestAuthReplayIsNotAFailedLogin: a request repeated with credentials the
// gateway already accepted (the same nonce count: a UDP retransmission read
// after its transaction ended, as sipp's INVITEs are when the gateway falls
// behind) is refused as a replay, but it proves the password, so it is not
// a failed authentication for the per-source limiter. Before this, the
// FailBurst-th such repeat locked every phone behind that address out
// ("403 Too many failed authentications", one more try per 6 s): in the
// calls-per-second benchmark (docs/benchmarks.md §16b) one overloaded step
// made every later step fail wholesale.
func TestAuthReplayIsNotAFailedLogin(t *testing.T) {
	n := newTestNet(t, true)
	p := newPhone(t, n.gw.Addr("udp"), "alice", "desk-secret")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	// A REGISTER answered with good credentials.
	req := sip.NewRequest(sip.REGISTER, p.gwURI(""))
	req.Recipient.User = ""
	req.AppendHeader(&sip.ToHeader{Address: p.gwURI(p.user)})
	from := &sip.FromHeader{Address: p.gwURI(p.user), Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(sip.NewHeader("Contact", "<sip:alice@"+p.addr+">"))
	req.AppendHeader(sip.NewHeader("Expires", "60"))
	res, err := p.cli.Do(ctx, req)
	if err != nil || res.StatusCode != sip.StatusUnauthorized {
		t.Fatalf("first REGISTER: %v %v, want 401", res, err)
	}
	res, err = p.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.user, Password: p.pw})
	if err != nil || res.StatusCode != sip.StatusOK {
		t.Fatalf("REGISTER with credentials: %v %v, want 200", res, err)
	}

	// The same credentials again, each time in a new transaction: each is
	// a replay.
	replays := n.gw.cfg.FailBurst + 5
	for i := range replays {
		again := req.Clone()
		again.RemoveHeader("Via") // a new branch: a new transaction
		res, err := p.cli.Do(ctx, again)
		if err != nil {
			t.Fatalf("replay %d: %v", i, err)
		}
		if res.StatusCode != sip.StatusUnauthorized {
			t.Fatalf("replay %d: %d %s, want 401 (refused, with a fresh challenge)", i, res.StatusCode, res.Reason)
		}
	}
	if got := n.gw.stats.authFailed.Load(); got != 0 {
		t.Errorf("failed authentications counted: %d, want 0 (%d replays of good credentials)", got, replays)
	}
	if got := n.gw.stats.authReplayed.Load(); got != uint64(replays) {
		t.Errorf("replays counted: %d, want %d", got, replays)
	}
	// The phone (and every other phone at its address) still registers.
	if res := p.register(60); res.StatusCode != sip.StatusOK {
		t.Fatalf("REGISTER after %d replays: %d %s, want 200", replays, res.StatusCode, res.Reason)
	}
	if got := n.gw.stats.authLimited.Load(); got != 0 {
		t.Errorf("requests refused by the limiter: %d, want 0", got)
	}
}
