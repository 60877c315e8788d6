package protocol

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/plugins/internal/pb/codecv1"
)

// CodecV1 is the codec protocol's version (plugins/proto/baton/codec/v1).
const CodecV1 = 1

// MaxFrameSamples bounds one frame of PCM on the wire: 120 ms at 48 kHz
// (Opus' longest frame, RFC 6716 §2.1.4). Anything larger is refused.
const MaxFrameSamples = 48000 * 120 / 1000

// CodecServer serves codecv1 from codecs. Each Frames stream owns its own
// per-call states; they are closed when the stream ends (host gone or
// restarted its stream), so a plugin never leaks a call's state.
type CodecServer struct {
	codecv1.UnimplementedCodecServer
	Codecs []codecs.Codec
}

// List implements codecv1.CodecServer.
func (s *CodecServer) List(context.Context, *codecv1.ListRequest) (*codecv1.ListResponse, error) {
	out := &codecv1.ListResponse{}
	for _, c := range s.Codecs {
		out.Codecs = append(out.Codecs, DescriptorToPB(c.Descriptor()))
	}
	return out, nil
}

// DescriptorToPB converts a descriptor for the wire.
func DescriptorToPB(d codecs.Descriptor) *codecv1.Descriptor {
	return &codecv1.Descriptor{
		Name: d.Name, PayloadType: uint32(d.PayloadType), SampleRate: uint32(d.SampleRate),
		ClockRate: uint32(d.ClockRate), Channels: uint32(d.Channels), Fmtp: d.Fmtp,
		FrameDurationUs: uint32(d.FrameDuration / time.Microsecond),
	}
}

// DescriptorFromPB converts a descriptor from the wire. It rejects values
// that do not fit codecs.Descriptor; the registry validates the rest.
func DescriptorFromPB(p *codecv1.Descriptor) (codecs.Descriptor, error) {
	if p.GetPayloadType() > 127 {
		return codecs.Descriptor{}, fmt.Errorf("codec %q: payload type %d outside 0..127: %w", p.GetName(), p.GetPayloadType(), codecs.ErrInvalidDescriptor)
	}
	const maxRate = 1 << 20
	if p.GetSampleRate() > maxRate || p.GetClockRate() > maxRate || p.GetChannels() > 255 {
		return codecs.Descriptor{}, fmt.Errorf("codec %q: rate or channels out of range: %w", p.GetName(), codecs.ErrInvalidDescriptor)
	}
	return codecs.Descriptor{
		Name: p.GetName(), PayloadType: uint8(p.GetPayloadType()), SampleRate: int(p.GetSampleRate()),
		ClockRate: int(p.GetClockRate()), Channels: int(p.GetChannels()), Fmtp: p.GetFmtp(),
		FrameDuration: time.Duration(p.GetFrameDurationUs()) * time.Microsecond,
	}, nil
}

type codecState struct {
	enc codecs.Encoder
	dec codecs.Decoder
	plc codecs.Concealer
	// pcm is the state's scratch frame, grown to the largest frame seen.
	pcm []int16
}

func (st *codecState) close() error {
	if st.enc != nil {
		return st.enc.Close()
	}
	return st.dec.Close()
}

// maxStates bounds the states of one stream, so a broken host cannot
// exhaust the plugin's memory.
const maxStates = 1 << 16

// Frames implements codecv1.CodecServer: it answers every Batch with one
// Batch of results in the same order (no result for a CLOSE that worked).
func (s *CodecServer) Frames(stream codecv1.Codec_FramesServer) error {
	states := make(map[uint64]*codecState)
	defer func() {
		for _, st := range states {
			_ = st.close()
		}
	}()
	var arena []byte // output bytes of one batch
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		out := &codecv1.Batch{Tick: in.GetTick(), Frames: make([]*codecv1.Frame, 0, len(in.GetFrames()))}
		results := make([]codecv1.Frame, len(in.GetFrames()))
		for i, f := range in.GetFrames() {
			r := &results[i]
			r.Op, r.StateId, r.Seq = f.GetOp(), f.GetStateId(), f.GetSeq()
			var data []byte
			data, arena, err = s.do(states, f, arena)
			if err != nil {
				r.Error = err.Error()
			} else {
				r.Data = data
			}
			if f.GetOp() == codecv1.Op_OP_CLOSE && err == nil {
				continue
			}
			out.Frames = append(out.Frames, r)
		}
		if err := stream.Send(out); err != nil {
			return err
		}
		// Send has marshalled the results; the arena is free again.
		arena = arena[:0]
	}
}

// do runs one request. Output bytes are appended to arena (one allocation
// per batch, not per frame).
func (s *CodecServer) do(states map[uint64]*codecState, f *codecv1.Frame, arena []byte) ([]byte, []byte, error) {
	id := f.GetStateId()
	switch f.GetOp() {
	case codecv1.Op_OP_OPEN_ENCODER, codecv1.Op_OP_OPEN_DECODER:
		if _, ok := states[id]; ok {
			return nil, arena, fmt.Errorf("state %d already open", id)
		}
		if len(states) >= maxStates {
			return nil, arena, fmt.Errorf("too many states (%d)", maxStates)
		}
		c := s.lookup(f.GetCodec())
		if c == nil {
			return nil, arena, fmt.Errorf("codec %q: %w", f.GetCodec(), codecs.ErrUnknownCodec)
		}
		st := &codecState{}
		var err error
		if f.GetOp() == codecv1.Op_OP_OPEN_ENCODER {
			st.enc, err = codecs.NewEncoder(c)
		} else {
			st.dec, err = codecs.NewDecoder(c)
			st.plc, _ = st.dec.(codecs.Concealer)
		}
		if err != nil {
			return nil, arena, err
		}
		states[id] = st
		return nil, arena, nil
	case codecv1.Op_OP_CLOSE:
		st, ok := states[id]
		if !ok {
			return nil, arena, fmt.Errorf("close: state %d not open", id)
		}
		delete(states, id)
		return nil, arena, st.close()
	}
	st, ok := states[id]
	if !ok {
		return nil, arena, fmt.Errorf("%s: state %d not open", f.GetOp(), id)
	}
	switch f.GetOp() {
	case codecv1.Op_OP_ENCODE:
		if st.enc == nil {
			return nil, arena, fmt.Errorf("encode: state %d is a decoder", id)
		}
		data := f.GetData()
		if len(data)%2 != 0 || len(data)/2 > MaxFrameSamples {
			return nil, arena, fmt.Errorf("encode: %d bytes of PCM: want an even count up to %d", len(data), 2*MaxFrameSamples)
		}
		pcm := st.frame(len(data) / 2)
		PCMFromBytes(pcm, data)
		start := len(arena)
		arena = grow(arena, 2*len(pcm)+64)
		n, err := st.enc.Encode(arena[start:cap(arena)], pcm)
		if err != nil {
			return nil, arena[:start], err
		}
		arena = arena[:start+n]
		return arena[start : start+n : start+n], arena, nil
	case codecv1.Op_OP_DECODE, codecv1.Op_OP_CONCEAL:
		if st.dec == nil {
			return nil, arena, fmt.Errorf("%s: state %d is an encoder", f.GetOp(), id)
		}
		pcm := st.frame(MaxFrameSamples)
		var n int
		var err error
		if f.GetOp() == codecv1.Op_OP_DECODE {
			n, err = st.dec.Decode(pcm, f.GetData())
		} else if st.plc == nil {
			err = errors.New("conceal: codec has no packet-loss concealment")
		} else {
			k := int(f.GetSamples())
			if k < 1 || k > MaxFrameSamples {
				return nil, arena, fmt.Errorf("conceal: %d samples: want 1..%d", k, MaxFrameSamples)
			}
			n, err = st.plc.Conceal(pcm[:k])
		}
		if err != nil {
			return nil, arena, err
		}
		start := len(arena)
		arena = grow(arena, 2*n)
		arena = arena[:start+2*n]
		PCMToBytes(arena[start:], pcm[:n])
		return arena[start : start+2*n : start+2*n], arena, nil
	}
	return nil, arena, fmt.Errorf("unknown op %d", f.GetOp())
}

func (s *CodecServer) lookup(name string) codecs.Codec {
	for _, c := range s.Codecs {
		if strings.EqualFold(c.Descriptor().Name, name) {
			return c
		}
	}
	return nil
}

func (st *codecState) frame(n int) []int16 {
	if cap(st.pcm) < n {
		st.pcm = make([]int16, n)
	}
	return st.pcm[:n]
}

// grow makes room for n more bytes after len(b), keeping b's contents.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), max(2*cap(b), len(b)+n, 4096))
	copy(nb, b)
	return nb
}

// PCMToBytes writes pcm as signed 16-bit little-endian into dst
// (len(dst) >= 2*len(pcm)).
func PCMToBytes(dst []byte, pcm []int16) {
	dst = dst[:2*len(pcm)]
	for i, s := range pcm {
		binary.LittleEndian.PutUint16(dst[2*i:], uint16(s))
	}
}

// PCMFromBytes reads signed 16-bit little-endian src into dst
// (len(dst) >= len(src)/2).
func PCMFromBytes(dst []int16, src []byte) {
	dst = dst[:len(src)/2]
	for i := range dst {
		dst[i] = int16(binary.LittleEndian.Uint16(src[2*i:]))
	}
}
