//go:build !cgo

package opus

import "github.com/baton-voice/baton/codecs"

const available = false

// Version returns "" without libopus.
func Version() string { return "" }

func newEncoder(Config) (codecs.Encoder, error) { return nil, ErrUnavailable }
func newDecoder(Config) (codecs.Decoder, error) { return nil, ErrUnavailable }
