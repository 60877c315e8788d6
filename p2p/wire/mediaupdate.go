package wire

import "unicode/utf8"

// Media update message types (35x): an in-call change of an established
// call's media (issue 8 §2): hold and resume (the direction of the audio)
// and a change of codec among those both parties offered at call setup.
// Either party may send one, on the call's signaling connection (which
// follows the call through a handoff, like DTMF in section 14). It is the
// P2P counterpart of a SIP re-INVITE (RFC 3264 §8); a gateway maps one to
// the other (docs/sip.md, Hold).
const (
	TypeMediaUpdate    Type = 350 // either party -> the other: my media is now this
	TypeMediaUpdateAck Type = 351 // the answer: accepted (and my own direction), or refused with a code
)

// MediaDirection is the direction of a call's audio from the sender's point
// of view, with SDP's four values (RFC 3264 §5.1, §6.1).
type MediaDirection string

// Media directions.
const (
	MediaSendRecv MediaDirection = "sendrecv" // two-way audio
	MediaSendOnly MediaDirection = "sendonly" // the sender holds the call (RFC 3264 §8.4)
	MediaRecvOnly MediaDirection = "recvonly" // the sender is held by its peer
	MediaInactive MediaDirection = "inactive" // both hold
)

// Valid reports whether d is one of the four directions.
func (d MediaDirection) Valid() bool {
	switch d {
	case MediaSendRecv, MediaSendOnly, MediaRecvOnly, MediaInactive:
		return true
	}
	return false
}

// Sends reports whether a party with direction d sends audio.
func (d MediaDirection) Sends() bool { return d == MediaSendRecv || d == MediaSendOnly }

// Receives reports whether a party with direction d receives audio.
func (d MediaDirection) Receives() bool { return d == MediaSendRecv || d == MediaRecvOnly }

// Holds reports whether a party with direction d holds the call (it does
// not want to receive: sendonly or inactive, RFC 3264 §8.4).
func (d MediaDirection) Holds() bool { return d == MediaSendOnly || d == MediaInactive }

// MaxMediaVersion bounds MediaUpdate.Version: 2^53-1, so the number
// survives JSON decoders that use float64.
const MaxMediaVersion = 1<<53 - 1

// MediaUpdate changes an active call's media. Version is the sender's own
// counter of media updates, starting at 1 and incremented by one for every
// update it sends (like SDP's o= version, RFC 4566 §5.2); the receiver
// uses it to recognise a repeat. Direction is the sender's new direction;
// Codec, when set, asks both parties to switch to that codec, which MUST
// be one both offered at call setup (the caller's invite list and the
// callee's codecs).
type MediaUpdate struct {
	CallID    string         `json:"call_id"`
	Version   int64          `json:"version"`
	Direction MediaDirection `json:"direction"`
	Codec     string         `json:"codec,omitempty"`
	// Reason says why (optional): "hold", "resume", "codec-fallback"...
	Reason string `json:"reason,omitempty"`
}

// MediaUpdateAck answers the MediaUpdate with Version. With Code empty
// the update is accepted: Direction is the answerer's own direction
// (sendonly answered recvonly, RFC 3264 §6.1) and Codec the codec both
// now use. With Code set it is refused and nothing changed: CodeGlare
// when both sent an update at once and the answerer wins (section 17),
// CodeUnsupported for a codec that was not offered, CodeBadRequest or
// CodeBusy otherwise.
type MediaUpdateAck struct {
	CallID    string         `json:"call_id"`
	Version   int64          `json:"version"`
	Direction MediaDirection `json:"direction,omitempty"`
	Codec     string         `json:"codec,omitempty"`
	Code      ErrorCode      `json:"code,omitempty"`
	Reason    string         `json:"reason,omitempty"`
}

// CodeGlare refuses a media update that crossed one of the answerer's own
// and lost (docs/protocol.md section 17: the caller's wins).
const CodeGlare ErrorCode = "glare"

func (*MediaUpdate) Type() Type    { return TypeMediaUpdate }
func (*MediaUpdateAck) Type() Type { return TypeMediaUpdateAck }

// newMediaUpdate returns an empty media update message of type t, or nil.
func newMediaUpdate(t Type) Message {
	switch t {
	case TypeMediaUpdate:
		return &MediaUpdate{}
	case TypeMediaUpdateAck:
		return &MediaUpdateAck{}
	}
	return nil
}

func checkMediaVersion(t Type, v int64) error {
	if v < 1 || v > MaxMediaVersion {
		return malformed(t, "version %d: want 1-%d", v, int64(MaxMediaVersion))
	}
	return nil
}

func checkCodecName(t Type, c string) error {
	if c == "" || len(c) > MaxNameLen || !utf8.ValidString(c) {
		return malformed(t, "codec %q invalid", c)
	}
	return nil
}

// Validate implements Message.
func (m *MediaUpdate) Validate() error {
	t := m.Type()
	if err := checkCallID(t, m.CallID); err != nil {
		return err
	}
	if err := checkMediaVersion(t, m.Version); err != nil {
		return err
	}
	if !m.Direction.Valid() {
		return malformed(t, "direction %q: want sendrecv, sendonly, recvonly or inactive", m.Direction)
	}
	if m.Codec != "" {
		if err := checkCodecName(t, m.Codec); err != nil {
			return err
		}
	}
	return checkReason(t, m.Reason)
}

// Validate implements Message.
func (m *MediaUpdateAck) Validate() error {
	t := m.Type()
	if err := checkCallID(t, m.CallID); err != nil {
		return err
	}
	if err := checkMediaVersion(t, m.Version); err != nil {
		return err
	}
	if m.Code == "" {
		if !m.Direction.Valid() {
			return malformed(t, "direction %q: want sendrecv, sendonly, recvonly or inactive", m.Direction)
		}
		if err := checkCodecName(t, m.Codec); err != nil {
			return err
		}
	} else {
		if len(m.Code) > MaxNameLen {
			return malformed(t, "oversized code")
		}
		if err := checkText(t, "code", string(m.Code)); err != nil {
			return err
		}
		if m.Direction != "" && !m.Direction.Valid() {
			return malformed(t, "direction %q: want sendrecv, sendonly, recvonly or inactive", m.Direction)
		}
		if m.Codec != "" {
			if err := checkCodecName(t, m.Codec); err != nil {
				return err
			}
		}
	}
	return checkReason(t, m.Reason)
}
