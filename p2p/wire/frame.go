// Package wire is Baton's P2P wire protocol: the framing and the messages
// spoken between an endpoint and the access server, and directly between
// two endpoints. docs/protocol.md is its specification.
//
// Every connection is TLS 1.3 (no 0-RTT, so the record layer already rejects
// replayed records); on top of it each frame carries a per-direction sequence
// number that must increase by exactly one, so a frame replayed, dropped or
// injected above TLS is detected, and a payload size limit bounds memory.
//
// A frame is an 18-byte header followed by a JSON payload:
//
//	offset size field
//	0      2    magic "BT"
//	2      1    version (1)
//	3      1    flags (0; reserved, must be zero)
//	4      2    message type, big endian
//	6      4    payload length, big endian
//	10     8    sequence number, big endian, starts at 1 per direction
//	18     n    payload (UTF-8 JSON object)
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the protocol version this build speaks.
const Version = 1

// HeaderSize is the size of a frame header in bytes.
const HeaderSize = 18

// DefaultMaxPayload bounds the payload of one frame unless a Conn is
// configured otherwise. Login answers carry a profile with buddies, so this
// is generous for signaling and still small for memory.
const DefaultMaxPayload = 256 << 10

var magic = [2]byte{'B', 'T'}

// Frame is one undecoded protocol frame.
type Frame struct {
	Type    Type
	Seq     uint64
	Payload []byte
}

// AppendFrame appends the encoding of f to dst.
func AppendFrame(dst []byte, f Frame) []byte {
	var h [HeaderSize]byte
	h[0], h[1] = magic[0], magic[1]
	h[2] = Version
	h[3] = 0
	binary.BigEndian.PutUint16(h[4:6], uint16(f.Type))
	binary.BigEndian.PutUint32(h[6:10], uint32(len(f.Payload)))
	binary.BigEndian.PutUint64(h[10:18], f.Seq)
	dst = append(dst, h[:]...)
	return append(dst, f.Payload...)
}

// ParseHeader decodes a frame header. It checks magic, version and flags,
// and that the payload length does not exceed maxPayload.
func ParseHeader(h []byte, maxPayload int) (typ Type, length int, seq uint64, err error) {
	if len(h) < HeaderSize {
		return 0, 0, 0, fmt.Errorf("%w: header is %d bytes, need %d", ErrTruncated, len(h), HeaderSize)
	}
	if h[0] != magic[0] || h[1] != magic[1] {
		return 0, 0, 0, fmt.Errorf("%w: got %q", ErrBadMagic, h[0:2])
	}
	if h[2] != Version {
		return 0, 0, 0, fmt.Errorf("%w: peer speaks version %d, this build speaks %d", ErrVersion, h[2], Version)
	}
	if h[3] != 0 {
		return 0, 0, 0, fmt.Errorf("%w: reserved flags 0x%02x set", ErrMalformed, h[3])
	}
	typ = Type(binary.BigEndian.Uint16(h[4:6]))
	n := binary.BigEndian.Uint32(h[6:10])
	if uint64(n) > uint64(maxPayload) {
		return 0, 0, 0, fmt.Errorf("%w: %d bytes declared, limit is %d", ErrTooLarge, n, maxPayload)
	}
	return typ, int(n), binary.BigEndian.Uint64(h[10:18]), nil
}

// ReadFrame reads one frame from r. The payload is freshly allocated and at
// most maxPayload bytes; a larger declared length is rejected before any of
// it is read, so a hostile peer cannot make the reader allocate.
func ReadFrame(r io.Reader, maxPayload int) (Frame, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Frame{}, fmt.Errorf("%w: %w", ErrTruncated, err)
		}
		return Frame{}, err // io.EOF at a frame boundary is a clean close
	}
	typ, n, seq, err := ParseHeader(h[:], maxPayload)
	if err != nil {
		return Frame{}, err
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) {
			// The stream ended after a header that promised a payload: that
			// is a truncated frame, not a clean close.
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, fmt.Errorf("%w: payload: %w", ErrTruncated, err)
	}
	return Frame{Type: typ, Seq: seq, Payload: p}, nil
}
