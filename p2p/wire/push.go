package wire

// Push message types (32x): `baton ctl push` (issue 9 §1). The device that
// has a call (the owner, B) offers it to another device of the same user
// (the target); the target takes it with an ordinary pull (300-313), so
// the handoff table, the policy and the failure paths are the pull's. The
// push adds only the offer and the report of how the pull went.
const (
	TypePushOffer  Type = 320 // owner -> target: take this call from me (first message of a connection)
	TypePushResult Type = 321 // target -> owner: how the pull went
	// MaxPushSteps bounds the steps a push-result reports (a pull has 12).
	MaxPushSteps = 16
	// MaxStepText bounds a step's title and detail in a push-result; a
	// sender trims longer ones (TrimText).
	MaxStepText = 160
)

// Handoff states a push-result reports: the target's HandoffInfo.State.
const (
	HandoffDone       = "done"
	HandoffFailed     = "failed"
	HandoffRolledBack = "rolled-back"
	HandoffCallEnded  = "call-ended"
)

// PushOffer asks the target to pull call CallID from the sender. From is
// the owner and must be the identity the connection's certificate proves;
// Peer is the far party (C), for the target to show while it rings.
//
// The target answers `ringing` while it alerts someone (a SIP phone behind
// a gateway), then `reject` (forbidden: policy; busy; declined: nobody
// answered; offline) or `push-result` once its pull is over.
type PushOffer struct {
	CallID string `json:"call_id"`
	From   string `json:"from"`
	Peer   string `json:"peer,omitempty"`
}

// PushStep is one claim step of the target's pull, as it recorded it.
type PushStep struct {
	Step         int    `json:"step"`
	Title        string `json:"title"`
	SinceStartUS int64  `json:"since_start_us"`
	Detail       string `json:"detail,omitempty"`
}

// PushResult reports the target's pull of a pushed call. State is
// "done" (the call is on the target now), or "failed", "rolled-back" or
// "call-ended" with Error saying why (the call stayed with the owner,
// unless it ended).
type PushResult struct {
	CallID       string     `json:"call_id"`
	HandoffID    string     `json:"handoff_id"`
	State        string     `json:"state"`
	Error        string     `json:"error,omitempty"`
	NewAddress   string     `json:"new_address,omitempty"`
	FirstAudioUS int64      `json:"first_audio_us,omitempty"`
	Steps        []PushStep `json:"steps,omitempty"`
}

func (*PushOffer) Type() Type  { return TypePushOffer }
func (*PushResult) Type() Type { return TypePushResult }

// newPush returns an empty push message of type t, or nil.
func newPush(t Type) Message {
	switch t {
	case TypePushOffer:
		return &PushOffer{}
	case TypePushResult:
		return &PushResult{}
	}
	return nil
}

// TrimText cuts s to valid UTF-8 of at most n bytes, at a rune boundary.
func TrimText(s string, n int) string {
	s = TrimReason(s)
	if len(s) <= n {
		return s
	}
	for n > 0 && (s[n]&0xC0) == 0x80 {
		n--
	}
	return s[:n]
}

// Validate implements Message.
func (m *PushOffer) Validate() error {
	t := m.Type()
	if err := checkCallID(t, m.CallID); err != nil {
		return err
	}
	if !ValidIdentity(m.From) {
		return malformed(t, "from %q: want user/device", m.From)
	}
	if m.Peer != "" && !ValidIdentity(m.Peer) {
		return malformed(t, "peer %q: want user/device", m.Peer)
	}
	return nil
}

// Validate implements Message.
func (m *PushResult) Validate() error {
	t := m.Type()
	if err := checkCallID(t, m.CallID); err != nil {
		return err
	}
	if err := checkCallID(t, m.HandoffID); err != nil {
		return malformed(t, "handoff_id must be 1-%d printable bytes", MaxCallIDLen)
	}
	switch m.State {
	case HandoffDone, HandoffFailed, HandoffRolledBack, HandoffCallEnded:
	default:
		return malformed(t, "state %q: want done, failed, rolled-back or call-ended", m.State)
	}
	if err := checkText(t, "error", m.Error); err != nil {
		return err
	}
	if len(m.Error) > MaxReasonLen {
		return malformed(t, "error longer than %d bytes", MaxReasonLen)
	}
	if err := checkAddr(t, "new_address", m.NewAddress, true); err != nil {
		return err
	}
	if m.FirstAudioUS < 0 {
		return malformed(t, "first_audio_us is negative")
	}
	if len(m.Steps) > MaxPushSteps {
		return malformed(t, "%d steps, limit %d", len(m.Steps), MaxPushSteps)
	}
	for _, s := range m.Steps {
		if s.Step < 1 || s.Step > 12 {
			return malformed(t, "step %d: want 1-12", s.Step)
		}
		if s.SinceStartUS < 0 {
			return malformed(t, "step %d: since_start_us is negative", s.Step)
		}
		for _, f := range []struct{ name, v string }{{"title", s.Title}, {"detail", s.Detail}} {
			if err := checkText(t, "step "+f.name, f.v); err != nil {
				return err
			}
			if len(f.v) > MaxStepText {
				return malformed(t, "step %d: %s longer than %d bytes", s.Step, f.name, MaxStepText)
			}
		}
	}
	return nil
}
