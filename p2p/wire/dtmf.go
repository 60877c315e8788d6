package wire

import (
	"fmt"
	"strconv"
)

// DTMF message type (33x): telephone events of an established call (issue
// 8 §3). They travel on the call's direct signaling connection, not in the
// SRTP media: that connection follows the call through a handoff (after a
// pull the far party's call signals with the new device), it is reliable
// and ordered, and it is already authenticated and replay-protected. A
// gateway maps them to and from RFC 4733 events on its SIP legs.
const (
	TypeDTMF Type = 330 // either party -> the other: these digits were pressed

	// MaxDTMFDigits bounds the digits of one DTMF message.
	MaxDTMFDigits = 32
	// DefaultDTMFDurationMS is the tone length of each digit when a DTMF
	// message gives none: 100 ms, a common phone default (ITU-T Q.24 asks
	// for at least 40 ms).
	DefaultDTMFDurationMS = 100
	// MinDTMFDurationMS and MaxDTMFDurationMS bound DTMF.DurationMS when it
	// is set. The upper bound keeps an RFC 4733 event's 16-bit duration
	// field (65535 samples at 8 kHz, 8.19 s) from overflowing.
	MinDTMFDurationMS = 40
	MaxDTMFDurationMS = 5000
)

// DTMFDigits is every digit a DTMF message may carry, in RFC 4733 §3.2
// event-code order (event 0-15).
const DTMFDigits = "0123456789*#ABCD"

// DTMF carries digits pressed during an active call, in the order pressed.
// DurationMS is how long each digit's tone lasted (or should last, for a
// gateway that plays it to a SIP phone); 0 means DefaultDTMFDurationMS.
// The receiver reports each digit as a call.dtmf event.
type DTMF struct {
	CallID     string `json:"call_id"`
	Digits     string `json:"digits"`
	DurationMS int    `json:"duration_ms,omitempty"`
}

func (*DTMF) Type() Type { return TypeDTMF }

// newDTMF returns an empty DTMF message of type t, or nil.
func newDTMF(t Type) Message {
	if t == TypeDTMF {
		return &DTMF{}
	}
	return nil
}

// CheckDTMFDigits reports whether digits is a valid DTMF string: 1 to
// MaxDTMFDigits of 0-9 * # A-D. The error names the first bad character
// and its position.
func CheckDTMFDigits(digits string) error {
	if digits == "" {
		return fmt.Errorf("no digits: want 1-%d of %s", MaxDTMFDigits, DTMFDigits)
	}
	if len(digits) > MaxDTMFDigits {
		return fmt.Errorf("%d digits, limit %d", len(digits), MaxDTMFDigits)
	}
	for i := 0; i < len(digits); i++ {
		if DTMFEvent(digits[i]) < 0 {
			return fmt.Errorf("character %s at position %d is not a DTMF digit (want 0-9 * # A-D)", quoteByte(digits[i]), i+1)
		}
	}
	return nil
}

// DTMFEvent returns the RFC 4733 §3.2 event code of digit d (0-15), or -1
// when d is not a DTMF digit.
func DTMFEvent(d byte) int {
	switch {
	case d >= '0' && d <= '9':
		return int(d - '0')
	case d == '*':
		return 10
	case d == '#':
		return 11
	case d >= 'A' && d <= 'D':
		return int(d-'A') + 12
	}
	return -1
}

// DTMFDigit returns the digit of RFC 4733 event code ev, and false for
// codes that are not DTMF digits (16 is flash, others are tones).
func DTMFDigit(ev uint8) (byte, bool) {
	if int(ev) >= len(DTMFDigits) {
		return 0, false
	}
	return DTMFDigits[ev], true
}

// quoteByte shows b readably in an error: '5', 'x', or '\x00' for a byte
// that is not printable ASCII (a UTF-8 lead byte stays a byte: the string
// may not be UTF-8 at all).
func quoteByte(b byte) string {
	if b >= ' ' && b <= '~' {
		return strconv.QuoteRune(rune(b))
	}
	return fmt.Sprintf("'\\x%02x'", b)
}

// Validate implements Message.
func (m *DTMF) Validate() error {
	t := m.Type()
	if err := checkCallID(t, m.CallID); err != nil {
		return err
	}
	if err := CheckDTMFDigits(m.Digits); err != nil {
		return malformed(t, "digits: %v", err)
	}
	if m.DurationMS != 0 && (m.DurationMS < MinDTMFDurationMS || m.DurationMS > MaxDTMFDurationMS) {
		return malformed(t, "duration_ms %d: want %d-%d (or 0 for %d)", m.DurationMS, MinDTMFDurationMS, MaxDTMFDurationMS, DefaultDTMFDurationMS)
	}
	return nil
}
