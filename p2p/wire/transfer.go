package wire

import "strings"

// Transfer message types (34x): `baton ctl transfer ID --to TARGET`, a
// blind transfer started by a P2P softphone (issue 9 §2; the SIP
// equivalent is REFER, RFC 3515). The transferor (the device that has
// call CallID with the transferee) asks the transferee to call Target; the
// transferee reports how that call went. On success the transferor ends
// its call with an ordinary bye; on failure the call stays as it was.
const (
	TypeTransferRequest Type = 340 // transferor -> transferee: call Target (first message of a connection)
	TypeTransferResult  Type = 341 // transferee -> transferor: how the call to Target went
)

// Transfer result states.
const (
	TransferDone   = "done"   // the transferee's call to Target is active
	TransferFailed = "failed" // it is not; Code and Reason say why, the call stays
)

// TransferRequest asks the transferee to call Target and, once Target
// answers, to take the transferor's place. From must be the identity the
// connection's certificate proves and the peer of call CallID. Target is a
// user ("carol": her best online device) or a device ("carol/laptop").
//
// The transferee answers `reject` when it will not try (forbidden: not
// your call, or policy; unknown-call; busy), else `transfer-result` once
// the call to Target is active or has failed.
type TransferRequest struct {
	CallID string `json:"call_id"`
	From   string `json:"from"`
	Target string `json:"target"`
}

// TransferResult reports the transferee's call to the target. NewCallID
// is that call, when one was placed.
type TransferResult struct {
	CallID    string    `json:"call_id"`
	State     string    `json:"state"`
	NewCallID string    `json:"new_call_id,omitempty"`
	Code      ErrorCode `json:"code,omitempty"`
	Reason    string    `json:"reason,omitempty"`
}

func (*TransferRequest) Type() Type { return TypeTransferRequest }
func (*TransferResult) Type() Type  { return TypeTransferResult }

// newTransfer returns an empty transfer message of type t, or nil.
func newTransfer(t Type) Message {
	switch t {
	case TypeTransferRequest:
		return &TransferRequest{}
	case TypeTransferResult:
		return &TransferResult{}
	}
	return nil
}

// ValidTarget reports whether s is a transfer target: a user name or
// user/device.
func ValidTarget(s string) bool {
	if strings.Contains(s, "/") {
		return ValidIdentity(s)
	}
	return ValidName(s)
}

// Validate implements Message.
func (m *TransferRequest) Validate() error {
	t := m.Type()
	if err := checkCallID(t, m.CallID); err != nil {
		return err
	}
	if !ValidIdentity(m.From) {
		return malformed(t, "from %q: want user/device", m.From)
	}
	if !ValidTarget(m.Target) {
		return malformed(t, "target %q: want user or user/device", m.Target)
	}
	return nil
}

// Validate implements Message.
func (m *TransferResult) Validate() error {
	t := m.Type()
	if err := checkCallID(t, m.CallID); err != nil {
		return err
	}
	switch m.State {
	case TransferDone:
		if m.Code != "" {
			return malformed(t, "state done with code %q", m.Code)
		}
	case TransferFailed:
		if m.Code == "" {
			return malformed(t, "state failed without a code")
		}
	default:
		return malformed(t, "state %q: want done or failed", m.State)
	}
	if m.NewCallID != "" {
		if err := checkCallID(t, m.NewCallID); err != nil {
			return malformed(t, "new_call_id must be 1-%d printable bytes", MaxCallIDLen)
		}
	}
	if len(m.Code) > MaxNameLen {
		return malformed(t, "oversized code")
	}
	if err := checkText(t, "code", string(m.Code)); err != nil {
		return err
	}
	return checkReason(t, m.Reason)
}
