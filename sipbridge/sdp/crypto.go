package sdp

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Suite is an SDES crypto-suite (RFC 4568 §6.2).
type Suite string

// The suites this package can key (RFC 4568 §6.2.1, §6.2.2): AES counter
// mode with a 128-bit key and an 80- or 32-bit HMAC-SHA1 tag. Both take a
// 30-octet inline key: a 16-octet master key then a 14-octet master salt.
const (
	AESCM128HMACSHA180 Suite = "AES_CM_128_HMAC_SHA1_80"
	AESCM128HMACSHA132 Suite = "AES_CM_128_HMAC_SHA1_32"
)

// Master key and salt lengths of the supported suites (RFC 4568 §6.2.1).
const (
	MasterKeyLen  = 16
	MasterSaltLen = 14
	// KeySaltLen is the length of the inline key-salt of the supported
	// suites.
	KeySaltLen = MasterKeyLen + MasterSaltLen
)

// Supported reports whether the suite is one this package can key.
func (s Suite) Supported() bool { return s == AESCM128HMACSHA180 || s == AESCM128HMACSHA132 }

// Suites is our preference order when we offer (the stronger tag first).
var Suites = []Suite{AESCM128HMACSHA180, AESCM128HMACSHA132}

// Crypto is one a=crypto attribute (RFC 4568 §9.1):
//
//	a=crypto:<tag> <crypto-suite> inline:<key-salt>[|<lifetime>][|<MKI>:<length>] [<session-params>]
//
// Only one key-param is kept (several, separated by ";", are refused as
// ErrInvalid: no suite here needs them).
type Crypto struct {
	Tag   uint32 // 1*9DIGIT
	Suite Suite
	// Key is the decoded key-salt: master key then master salt.
	Key []byte
	// Lifetime is the key's lifetime as written ("2^31", "1024"), "" when
	// absent.
	Lifetime string
	// MKI is "<value>:<length>" as written, "" when absent.
	MKI string
	// Params are the session parameters as written (RFC 4568 §6.3:
	// UNENCRYPTED_SRTP, KDR=..., ...), "" when none.
	Params string
}

// Usable reports whether we can key SRTP with this attribute: a supported
// suite, a key of the suite's length, no MKI and no session parameter
// (RFC 4568 §6.3: an attribute with a parameter we do not understand is
// not acceptable, and each of them changes the transform).
func (c *Crypto) Usable() bool {
	return c.Suite.Supported() && len(c.Key) == KeySaltLen && c.MKI == "" && c.Params == ""
}

// MasterKey and MasterSalt split a usable attribute's key-salt.
func (c *Crypto) MasterKey() []byte  { return c.Key[:MasterKeyLen] }
func (c *Crypto) MasterSalt() []byte { return c.Key[MasterKeyLen:] }

// NewKey returns a fresh random key-salt for the supported suites.
func NewKey() ([]byte, error) {
	k := make([]byte, KeySaltLen)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("sipbridge/sdp: new SRTP key: %w", err)
	}
	return k, nil
}

// String renders the attribute's value (after "crypto:").
func (c *Crypto) String() string {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(uint64(c.Tag), 10))
	b.WriteByte(' ')
	b.WriteString(string(c.Suite))
	b.WriteString(" inline:")
	b.WriteString(base64.StdEncoding.EncodeToString(c.Key))
	if c.Lifetime != "" {
		b.WriteByte('|')
		b.WriteString(c.Lifetime)
	}
	if c.MKI != "" {
		b.WriteByte('|')
		b.WriteString(c.MKI)
	}
	if c.Params != "" {
		b.WriteByte(' ')
		b.WriteString(c.Params)
	}
	return b.String()
}

// ParseCrypto parses the value of an a=crypto attribute. Errors wrap
// ErrInvalid and ErrCrypto and quote the attribute.
func ParseCrypto(v string) (Crypto, error) {
	bad := func(why string) (Crypto, error) {
		return Crypto{}, fmt.Errorf("%w: %w: a=crypto:%q: %s", ErrInvalid, ErrCrypto, v, why)
	}
	fields := strings.Fields(v)
	if len(fields) < 3 {
		return bad("want <tag> <crypto-suite> inline:<key>")
	}
	if len(fields[0]) > 9 || strings.Trim(fields[0], "0123456789") != "" || fields[0] == "" {
		return bad("tag is not 1 to 9 digits")
	}
	tag, _ := strconv.ParseUint(fields[0], 10, 32)
	c := Crypto{Tag: uint32(tag), Suite: Suite(fields[1])}
	if !validToken(fields[1]) {
		return bad("crypto-suite is not a token")
	}
	kp := fields[2]
	if strings.Contains(kp, ";") {
		return bad("more than one key-param is not supported")
	}
	info, ok := strings.CutPrefix(kp, "inline:")
	if !ok {
		return bad("key method is not inline")
	}
	parts := strings.Split(info, "|")
	if len(parts) > 3 {
		return bad("too many |-separated parts in the key-param")
	}
	key, err := base64.StdEncoding.Strict().DecodeString(parts[0])
	if err != nil || len(key) == 0 {
		return bad("key-salt is not base64")
	}
	if c.Suite.Supported() && len(key) != KeySaltLen {
		return bad(fmt.Sprintf("key-salt is %d octets, %s takes %d", len(key), c.Suite, KeySaltLen))
	}
	c.Key = key
	for _, p := range parts[1:] {
		switch {
		case validMKI(p):
			if c.MKI != "" {
				return bad("two MKIs")
			}
			c.MKI = p
		case validLifetime(p) && c.Lifetime == "" && c.MKI == "":
			c.Lifetime = p
		default:
			return bad(fmt.Sprintf("bad lifetime or MKI %q", p))
		}
	}
	if len(fields) > 3 {
		c.Params = strings.Join(fields[3:], " ")
		if !validFmtp(c.Params) {
			return bad("session parameters are not printable")
		}
	}
	return c, nil
}

// validLifetime: ["2^"] 1*DIGIT (RFC 4568 §9.2).
func validLifetime(s string) bool {
	s = strings.TrimPrefix(s, "2^")
	return s != "" && len(s) <= 20 && strings.Trim(s, "0123456789") == ""
}

// validMKI: mki-value ":" mki-length, 1*DIGIT each, the length 1 to 128
// (RFC 4568 §9.2).
func validMKI(s string) bool {
	val, length, ok := strings.Cut(s, ":")
	if !ok || val == "" || len(val) > 20 || strings.Trim(val, "0123456789") != "" {
		return false
	}
	n, err := strconv.Atoi(length)
	return err == nil && n >= 1 && n <= 128 && strconv.Itoa(n) == length
}

// FirstUsable is the first attribute of the description we can key, the
// one an answer takes (RFC 4568 §7.1.2: the answerer picks one of the
// offered attributes it supports, keeping its tag).
func (o *Offer) FirstUsable() (Crypto, bool) {
	for _, c := range o.Crypto {
		if c.Usable() {
			return c, true
		}
	}
	return Crypto{}, false
}

// SRTPFor applies our policy mode to the far side's description (its
// offer, or its answer to ours): it returns the attribute whose key
// decrypts what the far side sends and true when the stream is SRTP,
// false for plain RTP, or an error when the policy refuses the
// description (the gateway answers 488 Not Acceptable Here):
//
//   - RTP/SAVP under SRTPOff: ErrSRTPOff;
//   - RTP/SAVP without a usable a=crypto: ErrNoUsableCrypto;
//   - no usable a=crypto under SRTPRequired: ErrSRTPRequired.
//
// Under SRTPOptional and SRTPRequired a usable a=crypto on an RTP/AVP
// line is taken too (the "best effort" SRTP some phones offer); under
// SRTPOff it is ignored.
func (o *Offer) SRTPFor(mode SRTPMode) (Crypto, bool, error) {
	c, usable := o.FirstUsable()
	on := mode == SRTPOptional || mode == SRTPRequired
	switch {
	case o.Secure && !on:
		return Crypto{}, false, ErrSRTPOff
	case o.Secure && !usable:
		return Crypto{}, false, fmt.Errorf("%w (offered %s)", ErrNoUsableCrypto, offeredSuites(o))
	case !usable && mode == SRTPRequired:
		return Crypto{}, false, ErrSRTPRequired
	case usable && on:
		return c, true, nil
	}
	return Crypto{}, false, nil
}

// Remote is the far side's SRTP key for its description far under our
// policy mode (see SRTPFor). When the session's last body was our offer,
// far is the answer to it and must also match that offer (RFC 4568
// §7.1.3): to an offer without a=crypto, an answer without any; to one
// with, exactly one a=crypto whose tag and suite we offered.
func (s *Session) Remote(far *Offer, mode SRTPMode) (Crypto, bool, error) {
	if !s.offering {
		return far.SRTPFor(mode)
	}
	if len(s.offered) == 0 {
		if far.Secure || len(far.Crypto) > 0 {
			return Crypto{}, false, fmt.Errorf("%w: %w: the answer to our plain RTP/AVP offer has RTP/SAVP or a=crypto", ErrInvalid, ErrCrypto)
		}
		return far.SRTPFor(mode)
	}
	if len(far.Crypto) == 0 {
		return Crypto{}, false, ErrSRTPRequired
	}
	if len(far.Crypto) != 1 {
		return Crypto{}, false, fmt.Errorf("%w: %w: the answer has %d a=crypto, want one", ErrInvalid, ErrCrypto, len(far.Crypto))
	}
	c := far.Crypto[0]
	for _, o := range s.offered {
		if o.Tag == c.Tag && o.Suite == c.Suite {
			if !c.Usable() {
				return Crypto{}, false, fmt.Errorf("%w (answered %s)", ErrNoUsableCrypto, offeredSuites(far))
			}
			return c, true, nil
		}
	}
	return Crypto{}, false, fmt.Errorf("%w: %w: the answer's a=crypto:%d %s was not offered", ErrInvalid, ErrCrypto, c.Tag, c.Suite)
}
