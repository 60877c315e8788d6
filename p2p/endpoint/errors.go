package endpoint

import "errors"

// Sentinel errors. Returned errors wrap them with detail; the control API
// maps them to HTTP statuses with errors.Is.
var (
	// ErrUnknownPeer means the target is not a buddy or own device, or does
	// not exist: the access server gave us no way to reach it.
	ErrUnknownPeer = errors.New("endpoint: unknown user or not a buddy")
	// ErrOffline means the target exists but no device of it is online.
	ErrOffline = errors.New("endpoint: peer is offline")
	// ErrBusy means the callee refused because it is in another call.
	ErrBusy = errors.New("endpoint: peer is busy")
	// ErrDeclined means the callee declined the call.
	ErrDeclined = errors.New("endpoint: call declined")
	// ErrNoSuchCall means no call has the given id.
	ErrNoSuchCall = errors.New("endpoint: no such call")
	// ErrBadState means the operation does not fit the call's state
	// (answering an outgoing call, hanging up an ended one...).
	ErrBadState = errors.New("endpoint: operation not valid in this call state")
	// ErrUnreachable means the peer's signaling address did not answer.
	ErrUnreachable = errors.New("endpoint: peer unreachable")
	// ErrNoCodec means caller and callee share no codec.
	ErrNoCodec = errors.New("endpoint: no common codec")
	// ErrNotLoggedIn means the endpoint has no access session.
	ErrNotLoggedIn = errors.New("endpoint: not logged in")
	// ErrClosed means the endpoint has been closed.
	ErrClosed = errors.New("endpoint: closed")
	// ErrInvalidTarget means a call target is not "user" or "user/device".
	ErrInvalidTarget = errors.New("endpoint: invalid call target")
	// ErrForbidden means the handoff policy refused a query or pull.
	ErrForbidden = errors.New("endpoint: refused by policy")
	// ErrGrant means a handoff grant did not verify (forged, replayed,
	// expired, or for another call, device or party).
	ErrGrant = errors.New("endpoint: handoff grant refused")
	// ErrNothingToPull means the other device has no active session.
	ErrNothingToPull = errors.New("endpoint: nothing to pull")
	// ErrSeveralSessions means the other device has more than one session
	// and the pull did not say which.
	ErrSeveralSessions = errors.New("endpoint: several sessions; choose one by id")
	// ErrHandoffFailed means a handoff ended without taking the call; the
	// call stays where it was (or, when both other parties failed, ended).
	ErrHandoffFailed = errors.New("endpoint: handoff failed")
	// ErrNotBuddy means an invite came from a user who is not a buddy
	// while the endpoint accepts buddies only (Config.AcceptFrom); the
	// caller sees it as a forbidden reject.
	ErrNotBuddy = errors.New("endpoint: not a buddy")
	// ErrInvalidConfig means a Config value is out of range.
	ErrInvalidConfig = errors.New("endpoint: invalid configuration")
	// ErrNoSuchHandoff means no handoff has the given id.
	ErrNoSuchHandoff = errors.New("endpoint: no such handoff")
	// ErrInvalidDTMF means DTMF digits (or their duration) were refused
	// before sending: the error names the character that is not 0-9*#A-D.
	ErrInvalidDTMF = errors.New("endpoint: invalid DTMF")
	// ErrMediaRefused means the peer refused a media update (hold,
	// resume, codec change): the error carries its code and reason; the
	// call's media is unchanged.
	ErrMediaRefused = errors.New("endpoint: media update refused")
)
