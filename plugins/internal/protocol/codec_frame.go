package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/baton-voice/baton/plugins/internal/pb/codecv1"
)

// Frame is one packed frame of a codec Batch (layout in codec.proto).
// Data aliases the buffer it was read from.
type Frame struct {
	Op      codecv1.Op
	Err     bool // status 1: Data is an error message
	Seq     uint32
	StateID uint64
	Samples uint32
	Data    []byte
}

// FrameHeaderLen is the size of a packed frame's header.
const FrameHeaderLen = 24

// MaxFrameData bounds one frame's data.
const MaxFrameData = 1 << 16

// ErrBadFrame means a packed frame is malformed.
var ErrBadFrame = errors.New("malformed codec frame")

// AppendFrame appends f, packed, to b.
func AppendFrame(b []byte, f Frame) []byte {
	var h [FrameHeaderLen]byte
	h[0] = byte(f.Op)
	if f.Err {
		h[1] = 1
	}
	binary.LittleEndian.PutUint32(h[4:], f.Seq)
	binary.LittleEndian.PutUint64(h[8:], f.StateID)
	binary.LittleEndian.PutUint32(h[16:], f.Samples)
	binary.LittleEndian.PutUint32(h[20:], uint32(len(f.Data)))
	b = append(b, h[:]...)
	return append(b, f.Data...)
}

// AppendHeader appends a frame header announcing n bytes of data, which
// the caller appends next (so data can be produced in place).
func AppendHeader(b []byte, f Frame, n int) []byte {
	var h [FrameHeaderLen]byte
	h[0] = byte(f.Op)
	if f.Err {
		h[1] = 1
	}
	binary.LittleEndian.PutUint32(h[4:], f.Seq)
	binary.LittleEndian.PutUint64(h[8:], f.StateID)
	binary.LittleEndian.PutUint32(h[16:], f.Samples)
	binary.LittleEndian.PutUint32(h[20:], uint32(n))
	return append(b, h[:]...)
}

// NextFrame reads the first packed frame of b and returns it and the rest.
// It returns an error wrapping ErrBadFrame, saying what is wrong, for a
// truncated frame, an unknown op or status, a reserved field not zero or
// data over MaxFrameData.
func NextFrame(b []byte) (Frame, []byte, error) {
	if len(b) < FrameHeaderLen {
		return Frame{}, nil, fmt.Errorf("%w: %d bytes left, header is %d", ErrBadFrame, len(b), FrameHeaderLen)
	}
	f := Frame{
		Op:      codecv1.Op(b[0]),
		Seq:     binary.LittleEndian.Uint32(b[4:]),
		StateID: binary.LittleEndian.Uint64(b[8:]),
		Samples: binary.LittleEndian.Uint32(b[16:]),
	}
	if f.Op <= codecv1.Op_OP_UNSPECIFIED || f.Op > codecv1.Op_OP_CONCEAL {
		return Frame{}, nil, fmt.Errorf("%w: op %d", ErrBadFrame, b[0])
	}
	switch b[1] {
	case 0:
	case 1:
		f.Err = true
	default:
		return Frame{}, nil, fmt.Errorf("%w: status %d", ErrBadFrame, b[1])
	}
	if b[2] != 0 || b[3] != 0 {
		return Frame{}, nil, fmt.Errorf("%w: reserved bytes not zero", ErrBadFrame)
	}
	n := binary.LittleEndian.Uint32(b[20:])
	if n > MaxFrameData {
		return Frame{}, nil, fmt.Errorf("%w: data length %d over %d", ErrBadFrame, n, MaxFrameData)
	}
	rest := b[FrameHeaderLen:]
	if uint32(len(rest)) < n {
		return Frame{}, nil, fmt.Errorf("%w: data length %d, %d bytes left", ErrBadFrame, n, len(rest))
	}
	f.Data = rest[:n:n]
	return f, rest[n:], nil
}
