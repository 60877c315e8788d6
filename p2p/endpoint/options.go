package endpoint

import (
	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/wire"
)

// CallOptions are the per-call settings of DialWith and AnswerWith. A zero
// value means the endpoint's defaults (Config.NewSource, Config.NewSink).
type CallOptions struct {
	// Source is what the call sends (a gateway: the SIP leg's decoded
	// audio); nil = Config.NewSource.
	Source audio.Source
	// Sink is where the call's received audio goes (a gateway: the SIP
	// leg's encoder); nil = Config.NewSink. A Sink that implements
	// io.Closer is closed when the call ends.
	Sink audio.Sink
	// Number is a telephone number for a gateway's trunk device to dial
	// onward (Invite.Number); "" for a call to a person's device.
	Number string
	// transfer: the call is a transferee's call to its transfer target
	// (transfer.go), which may take one call slot past MaxCalls: the
	// original call ends once it is answered.
	transfer bool
	// Replaces, for DialWith, makes the call an attended transfer's
	// invite-replaces (transfer.go): a transferee passes on
	// TransferOffer.Replaces, the transferor's signed permission.
	Replaces *wire.Replaces
}

// CanCall reports whether Dial would find target now (valid, a buddy or
// an own device, online) without calling it: the error Dial would return
// first. A gateway asks before it rings a SIP phone for a click-to-dial
// call, so the phone never rings for a call that cannot be placed.
func (e *Endpoint) CanCall(target string) error {
	_, _, err := e.resolve(target)
	return err
}
