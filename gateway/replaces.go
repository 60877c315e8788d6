package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/p2p/handoff"
)

// Errors of INVITE with Replaces (RFC 3891).
var (
	// ErrBadReplaces means a Replaces header breaks RFC 3891 §6.1.
	ErrBadReplaces = errors.New("gateway: bad Replaces header")
	// ErrNoReplacedDialog means the dialog a Replaces named is gone (it
	// ended, or moved to another device) by the time it was pulled.
	ErrNoReplacedDialog = errors.New("gateway: the dialog to replace does not exist")
)

// Replaces is an RFC 3891 Replaces header: the dialog an INVITE takes the
// place of. ToTag is compared with the local tag of the dialog at the UAS
// (the gateway), FromTag with its remote tag (RFC 3891 §3).
type Replaces struct {
	CallID    string
	ToTag     string
	FromTag   string
	EarlyOnly bool
}

// String is the header value, parameters in the RFC's order.
func (r Replaces) String() string {
	s := r.CallID + ";to-tag=" + r.ToTag + ";from-tag=" + r.FromTag
	if r.EarlyOnly {
		s += ";early-only"
	}
	return s
}

// isToken reports RFC 3261 §25.1 token characters.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-.!%*_+`'~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// isWord reports RFC 3261 §25.1 word characters (a Call-ID is word
// ["@" word]).
func isWord(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-.!%*_+`'~()<>:\\\"/[]?{}", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ParseReplaces parses a Replaces header value (RFC 3891 §6.1):
//
//	Replaces = callid *(SEMI replaces-param)
//	replaces-param = to-tag / from-tag / early-flag / generic-param
//
// with exactly one to-tag and one from-tag. Parameter names are
// case-insensitive; other parameters are ignored.
func ParseReplaces(v string) (Replaces, error) {
	parts := strings.Split(v, ";")
	var r Replaces
	r.CallID = strings.TrimSpace(parts[0])
	id, host, at := strings.Cut(r.CallID, "@")
	if !isWord(id) || (at && !isWord(host)) {
		return Replaces{}, fmt.Errorf("%w: call-id %q", ErrBadReplaces, r.CallID)
	}
	var haveTo, haveFrom bool
	for _, p := range parts[1:] {
		name, val, hasVal := strings.Cut(p, "=")
		name, val = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(val)
		switch name {
		case "to-tag", "from-tag":
			if !hasVal || !isToken(val) {
				return Replaces{}, fmt.Errorf("%w: %s %q is not a token", ErrBadReplaces, name, val)
			}
			if (name == "to-tag" && haveTo) || (name == "from-tag" && haveFrom) {
				return Replaces{}, fmt.Errorf("%w: %s given twice", ErrBadReplaces, name)
			}
			if name == "to-tag" {
				r.ToTag, haveTo = val, true
			} else {
				r.FromTag, haveFrom = val, true
			}
		case "early-only":
			if hasVal {
				return Replaces{}, fmt.Errorf("%w: early-only takes no value", ErrBadReplaces)
			}
			r.EarlyOnly = true
		default:
			if !isToken(name) || (hasVal && val == "") {
				return Replaces{}, fmt.Errorf("%w: parameter %q", ErrBadReplaces, strings.TrimSpace(p))
			}
		}
	}
	if !haveTo || !haveFrom {
		return Replaces{}, fmt.Errorf("%w: to-tag and from-tag are required", ErrBadReplaces)
	}
	return r, nil
}

// replacesVerdict applies RFC 3891 §3 to a Replaces the gateway has
// matched (v nil: no dialog matched), in the RFC's order; the requester
// is already authenticated (digest, as any INVITE). 0 means go ahead.
func replacesVerdict(r Replaces, v *dialogView, allowed handoff.Decision) (int, string) {
	switch {
	case v == nil:
		return sip.StatusCallTransactionDoesNotExists, "No Dialog Matches Replaces"
	case v.State == "early" && !v.Ours:
		return sip.StatusCallTransactionDoesNotExists, "Early Dialog Not Ours"
	case v.State == "confirmed" && r.EarlyOnly:
		return sip.StatusBusyHere, "Busy Here (early-only, dialog confirmed)"
	case !allowed.Allow:
		return sip.StatusForbidden, "Forbidden"
	}
	return 0, ""
}

// matchReplaces finds the dialog a Replaces names. The requester's own
// user's devices are asked afresh (a dialog that just ended or moved
// matches nothing); a dialog of another user is known only if a
// subscription has published it, which is enough to refuse it by policy.
func (g *Gateway) matchReplaces(ctx context.Context, ep *endpoint.Endpoint, d *device, r Replaces) *dialogView {
	views, _ := sessionsOf(ctx, ep, d.identity(), "")
	for _, v := range views {
		if v.CallID == r.CallID && v.localTag() == r.ToTag && v.remoteTag() == r.FromTag {
			return &v
		}
	}
	if v, ok := g.dialogs.published(r.CallID, r.ToTag, r.FromTag); ok && userOf(v.Owner) != d.acct.User {
		return &v
	}
	return nil
}

func userOf(identity string) string {
	u, _, _ := strings.Cut(identity, "/")
	return u
}

// takeover decides whether a new INVITE dials (nil) or takes a call: with
// a Replaces header, the dialog it names (RFC 3891 §3; code > 0 is the
// final response when it may not); to the pickup code, the user's active
// call.
func (g *Gateway) takeover(ep *endpoint.Endpoint, d *device, req *sip.Request) (*take, int, string) {
	hs := req.GetHeaders("Replaces")
	if len(hs) == 0 {
		if g.isPickup(req.Recipient.User) {
			return g.pickupTake(ep), 0, ""
		}
		return nil, 0, ""
	}
	if len(hs) > 1 {
		return nil, sip.StatusBadRequest, "More Than One Replaces Header"
	}
	r, err := ParseReplaces(hs[0].Value())
	if err != nil {
		return nil, sip.StatusBadRequest, "Bad Replaces Header"
	}
	log := g.log.With("sip_call_id", req.CallID().Value(), "device", d.identity(), "replaces", r.String())
	ctx, cancel := context.WithTimeout(g.ctx, 10*time.Second)
	defer cancel()
	v := g.matchReplaces(ctx, ep, d, r)
	var dec handoff.Decision
	if v != nil {
		dec, err = g.policy().Decide(ctx, handoff.Request{Kind: handoff.KindPull, Requester: d.identity(), Owner: v.Owner, CallID: v.CallID, Peer: v.Peer})
		if err != nil {
			dec = handoff.Decision{Reason: err.Error()}
		}
	}
	if code, reason := replacesVerdict(r, v, dec); code != 0 {
		log.Info("INVITE with Replaces refused", "status", code, "reason", reason, "policy", dec.Reason)
		return nil, code, reason
	}
	owner, callID := v.Owner, v.CallID
	log.Info("INVITE with Replaces: taking the call", "owner", owner, "p2p_call_id", callID)
	return &take{
		find: func(context.Context) (string, string, error) { return owner, callID, nil },
		pull: func(ctx context.Context, b *bridge, owner, callID string) (endpoint.CallInfo, error) {
			ci, err := g.pullSession(ctx, ep, b, owner, callID)
			if err == nil || ctx.Err() != nil {
				return ci, err
			}
			// Lost a race: if the dialog is gone now (another device took
			// the call, or it ended), say so (481) rather than a failed
			// pull.
			mctx, mcancel := context.WithTimeout(g.ctx, 5*time.Second)
			defer mcancel()
			if g.matchReplaces(mctx, ep, d, r) == nil {
				return ci, fmt.Errorf("%w: %s on %s: %v", ErrNoReplacedDialog, callID, owner, err)
			}
			return ci, err
		},
	}, 0, ""
}
