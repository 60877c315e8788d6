package wire

import (
	"strconv"
	"strings"
)

// Transfer message types (34x): `baton ctl transfer ID --to TARGET`, a
// blind transfer started by a P2P softphone (issue 9 §2; the SIP
// equivalent is REFER, RFC 3515). The transferor (the device that has
// call CallID with the transferee) asks the transferee to call Target; the
// transferee reports how that call went. On success the transferor ends
// its call with an ordinary bye; on failure the call stays as it was.
const (
	TypeTransferRequest Type = 340 // transferor -> transferee: call Target (first message of a connection)
	TypeTransferResult  Type = 341 // transferee -> transferor: how the call to Target went
	// TypeInviteReplaces is an attended transfer's invite (the P2P
	// equivalent of INVITE with Replaces, RFC 3891): transferee -> target,
	// first message of a connection, the call it places replacing the
	// target's call with the transferor.
	TypeInviteReplaces Type = 342
	// MaxReplacesSignatureLen bounds Replaces.Signature (an ECDSA P-256
	// ASN.1 signature is at most 72 bytes; Ed25519 64).
	MaxReplacesSignatureLen = MaxGrantSignatureLen
	// ReplacesNonceLen is the length of Replaces.Nonce.
	ReplacesNonceLen = GrantNonceLen
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
//
// An attended transfer (`ctl transfer ID --attended ID2`, RFC 5589 §7)
// carries Replaces: the transferor's signed permission for the transferee
// to replace the transferor's call Replaces.CallID with the target. Target
// is then that call's peer device (Replaces.Target), and the transferee
// calls it with invite-replaces instead of invite.
type TransferRequest struct {
	CallID   string    `json:"call_id"`
	From     string    `json:"from"`
	Target   string    `json:"target"`
	Replaces *Replaces `json:"replaces,omitempty"`
}

// Replaces names the call an attended transfer's invite replaces and
// proves that the transferor allows it: From (the transferor) signs, with
// the key of the certificate it proved when call CallID with Target was
// set up, that device To (the transferee) may replace that call with a
// call of its own to Target, until NotAfterUnix. Target verifies the
// signature with the certificate of its call CallID's peer, and refuses
// one that is for another call, another peer, another caller, expired or
// replayed (the nonce is single-use). It is the P2P form of RFC 3891's
// Replaces header: the call ID names the dialog, the signature stands for
// the tags and the authorization RFC 3891 §6 asks for.
type Replaces struct {
	CallID       string `json:"call_id"` // the transferor's call with Target
	From         string `json:"from"`    // the transferor, the signer
	To           string `json:"to"`      // the transferee, the device allowed to replace
	Target       string `json:"target"`  // the device whose call is replaced
	NotAfterUnix int64  `json:"not_after_unix"`
	Nonce        []byte `json:"nonce"`
	Signature    []byte `json:"signature"` // ECDSA/Ed25519 over SigningBytes
}

// SigningBytes is the exact byte string the transferor signs and the
// target verifies: a version label (distinct from a handoff grant's) and
// the fields, one per line.
func (r *Replaces) SigningBytes() []byte {
	var b strings.Builder
	b.WriteString("baton-replaces-v1\n")
	for _, s := range []string{r.CallID, r.From, r.To, r.Target, strconv.FormatInt(r.NotAfterUnix, 10)} {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	b.Write(r.Nonce)
	return []byte(b.String())
}

func (r *Replaces) validate(t Type) error {
	if err := checkCallID(t, r.CallID); err != nil {
		return malformed(t, "replaces call_id must be 1-%d printable bytes", MaxCallIDLen)
	}
	for _, f := range []struct{ name, id string }{{"from", r.From}, {"to", r.To}, {"target", r.Target}} {
		if !ValidIdentity(f.id) {
			return malformed(t, "replaces %s %q: want user/device", f.name, f.id)
		}
	}
	if r.From == r.To || r.From == r.Target || r.To == r.Target {
		return malformed(t, "replaces from, to and target must be three devices")
	}
	if r.NotAfterUnix <= 0 {
		return malformed(t, "replaces not_after_unix missing")
	}
	if len(r.Nonce) != ReplacesNonceLen {
		return malformed(t, "replaces nonce is %d bytes, want %d", len(r.Nonce), ReplacesNonceLen)
	}
	if len(r.Signature) == 0 || len(r.Signature) > MaxReplacesSignatureLen {
		return malformed(t, "replaces signature must be 1-%d bytes", MaxReplacesSignatureLen)
	}
	return nil
}

// InviteReplaces is the transferee's invite to an attended transfer's
// target: an ordinary invite, answered like one (ringing is optional,
// accept or reject), that the target accepts at once as the replacement
// of its call Replaces.CallID with the transferor, which it then ends
// (bye, reason "replaced"). A target that finds no such call with
// Replaces.From, or a Replaces that does not verify, rejects it
// (unknown-call, forbidden) and keeps its call.
type InviteReplaces struct {
	Invite   Invite   `json:"invite"`
	Replaces Replaces `json:"replaces"`
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
func (*InviteReplaces) Type() Type  { return TypeInviteReplaces }

// newTransfer returns an empty transfer message of type t, or nil.
func newTransfer(t Type) Message {
	switch t {
	case TypeTransferRequest:
		return &TransferRequest{}
	case TypeTransferResult:
		return &TransferResult{}
	case TypeInviteReplaces:
		return &InviteReplaces{}
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
	if r := m.Replaces; r != nil {
		if err := r.validate(t); err != nil {
			return err
		}
		switch {
		case r.From != m.From:
			return malformed(t, "replaces from %q is not the transferor %q", r.From, m.From)
		case r.Target != m.Target:
			return malformed(t, "replaces target %q is not the target %q", r.Target, m.Target)
		case r.CallID == m.CallID:
			return malformed(t, "replaces names the transferred call itself")
		}
	}
	return nil
}

// Validate implements Message.
func (m *InviteReplaces) Validate() error {
	t := m.Type()
	if err := m.Invite.Validate(); err != nil {
		return malformed(t, "invite: %v", err)
	}
	if err := m.Replaces.validate(t); err != nil {
		return err
	}
	switch {
	case m.Replaces.To != m.Invite.From:
		return malformed(t, "replaces to %q is not the caller %q", m.Replaces.To, m.Invite.From)
	case m.Replaces.Target != m.Invite.To:
		return malformed(t, "replaces target %q is not the callee %q", m.Replaces.Target, m.Invite.To)
	case m.Replaces.CallID == m.Invite.CallID:
		return malformed(t, "the invite's call id is the replaced call's")
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
