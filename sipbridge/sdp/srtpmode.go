package sdp

import "fmt"

// SRTPMode is our SDES-SRTP policy toward one SIP peer (RFC 4568).
type SRTPMode int

// SRTP modes. The zero value SRTPModeUnknown behaves as SRTPOff.
const (
	SRTPModeUnknown SRTPMode = iota
	// SRTPOff: plain RTP/AVP only; an RTP/SAVP offer is refused.
	SRTPOff
	// SRTPOptional: we offer plain RTP/AVP, and answer an offer with a
	// usable a=crypto with SRTP in the offer's profile.
	SRTPOptional
	// SRTPRequired: we offer RTP/SAVP with a=crypto, and refuse a
	// description without a usable a=crypto.
	SRTPRequired
)

func (m SRTPMode) String() string {
	switch m {
	case SRTPOff:
		return "off"
	case SRTPOptional:
		return "optional"
	case SRTPRequired:
		return "required"
	default:
		return "unknown"
	}
}

// ParseSRTPMode parses "off", "optional" or "required" ("" is off).
func ParseSRTPMode(s string) (SRTPMode, error) {
	switch s {
	case "", "off":
		return SRTPOff, nil
	case "optional":
		return SRTPOptional, nil
	case "required":
		return SRTPRequired, nil
	}
	return SRTPModeUnknown, fmt.Errorf("sipbridge/sdp: SRTP mode %q: want off, optional or required", s)
}
