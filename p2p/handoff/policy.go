package handoff

import (
	"context"
	"strings"
)

// Kind says what a policy request asks for.
type Kind int

// Request kinds.
const (
	KindUnknown Kind = iota
	// KindQuery: may the requester learn B's sessions (step 2-3)?
	KindQuery
	// KindPull: may the requester take a session over (step 5 onward)?
	KindPull
	// KindTransfer: may the requester (a party of call CallID) have the
	// owner's call go to Peer, the transfer target? Asked for a REFER from
	// a SIP phone (requester and owner: the phone's device) and for `baton
	// ctl transfer` (requester: the transferor, owner: the transferee that
	// would call the target).
	KindTransfer
)

func (k Kind) String() string {
	switch k {
	case KindQuery:
		return "query"
	case KindPull:
		return "pull"
	case KindTransfer:
		return "transfer"
	}
	return "unknown"
}

// Request is what a Policy decides on. Identities are "user/device" as
// proven by TLS certificates.
type Request struct {
	Kind      Kind
	Requester string // A
	Owner     string // B, the device that has the session
	CallID    string // empty for KindQuery
	Peer      string // C, when known; for KindTransfer the transfer target
}

// Decision is a policy's answer. Reason is shown to the owner's logs, and
// to the requester only as a generic refusal (a refused requester learns
// nothing about the sessions).
type Decision struct {
	Allow  bool
	Reason string
}

// Policy decides whether a handoff or transfer may happen. It is the
// interface a transfer-policy plugin will serve (DESIGN.md §4).
type Policy interface {
	Decide(ctx context.Context, req Request) (Decision, error)
}

// SameUser is the default policy: only devices of the same user may query
// or pull each other's sessions. Transfers are allowed: whoever asks is a
// party of the call (the endpoint and the gateway check that before they
// ask), and the target is someone the transferee may call anyway; the
// gateway's own rule against trunk-to-trunk transfers still applies.
type SameUser struct{}

// Decide implements Policy.
func (SameUser) Decide(_ context.Context, req Request) (Decision, error) {
	if req.Kind == KindTransfer {
		return Decision{Allow: true, Reason: "a party of the call may transfer it"}, nil
	}
	ru, _, _ := strings.Cut(req.Requester, "/")
	ou, _, _ := strings.Cut(req.Owner, "/")
	if ru == "" || ru != ou {
		return Decision{Allow: false, Reason: "only devices of the same user may " + req.Kind.String() + " sessions"}, nil
	}
	return Decision{Allow: true, Reason: "same user"}, nil
}
