package media

import (
	"crypto/rand"
	"fmt"
	"log/slog"
)

// KeysLen is the length of Keys in bytes: a 128-bit master key followed by a
// 112-bit master salt, the sizes of the AES_CM_128_HMAC_SHA1_80 profile
// (RFC 3711 §8.2; the same key||salt order as the SDES inline key of
// RFC 4568 §6.1).
const KeysLen = 16 + 14

// Keys is an SRTP master key and master salt for one direction of a call
// (RFC 3711 §8.2). Each direction has its own Keys: the sender encrypts with
// its SendKeys, which are the peer's RecvKeys.
//
// Keys never print their content: String, GoString and LogValue redact it,
// so a Keys value that ends up in a log or an error message leaks nothing.
type Keys struct {
	MasterKey  [16]byte
	MasterSalt [14]byte
}

// NewKeys returns fresh random keys from crypto/rand.
func NewKeys() (Keys, error) {
	var k Keys
	if _, err := rand.Read(k.MasterKey[:]); err != nil {
		return Keys{}, fmt.Errorf("media: new keys: %w", err)
	}
	if _, err := rand.Read(k.MasterSalt[:]); err != nil {
		return Keys{}, fmt.Errorf("media: new keys: %w", err)
	}
	return k, nil
}

// KeysFromBytes parses KeysLen bytes (master key, then master salt) as
// produced by Keys.Bytes.
func KeysFromBytes(b []byte) (Keys, error) {
	if len(b) != KeysLen {
		return Keys{}, fmt.Errorf("media: keys from bytes: got %d bytes, want %d: %w", len(b), KeysLen, ErrInvalidKeys)
	}
	var k Keys
	copy(k.MasterKey[:], b[:len(k.MasterKey)])
	copy(k.MasterSalt[:], b[len(k.MasterKey):])
	return k, nil
}

// Bytes returns the master key followed by the master salt (KeysLen bytes).
func (k Keys) Bytes() []byte {
	b := make([]byte, 0, KeysLen)
	b = append(b, k.MasterKey[:]...)
	return append(b, k.MasterSalt[:]...)
}

// String redacts the key material.
func (k Keys) String() string { return "media.Keys{redacted}" }

// GoString redacts the key material for %#v.
func (k Keys) GoString() string { return k.String() }

// LogValue redacts the key material in slog output.
func (k Keys) LogValue() slog.Value { return slog.StringValue(k.String()) }
