package protocol

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"

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
	// Workers is how many goroutines work on one stream's frames; 0 means
	// GOMAXPROCS.
	Workers int
	// Shared is the shared memory region the host passed the process
	// (OpenSharedMemory), nil when none: with it, List says
	// shared_memory and batches may come and go through it (shm.go).
	Shared []byte
}

// List implements codecv1.CodecServer.
func (s *CodecServer) List(context.Context, *codecv1.ListRequest) (*codecv1.ListResponse, error) {
	out := &codecv1.ListResponse{SharedMemory: s.Shared != nil}
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

// parallelMin is the smallest batch worth splitting among workers.
const parallelMin = 16

func (s *CodecServer) workers() int {
	if s.Workers > 0 {
		return s.Workers
	}
	return max(1, runtime.GOMAXPROCS(0))
}

// Frames implements codecv1.CodecServer: it answers every Batch with one
// Batch of results, one per frame, in the same order. A malformed batch
// ends the stream with an error (the host opens a new one).
//
// The states are spread over Workers goroutines in turn as they are
// opened, each goroutine owning its states: a large batch is worked on by all of them at
// once (a call's frames stay in order on its one worker, so a codec's
// state needs no lock), which lets a costly codec use every core.
func (s *CodecServer) Frames(stream codecv1.Codec_FramesServer) error {
	w := s.workers()
	shards := make([]map[uint64]*codecState, w)
	for i := range shards {
		shards[i] = make(map[uint64]*codecState)
	}
	defer func() {
		for _, m := range shards {
			for _, st := range m {
				_ = st.close()
			}
		}
	}()
	out := &codecv1.Batch{}
	var (
		arena  []byte                 // the answer's packed frames
		frames []Frame                // the batch's requests
		parts  = make([][]byte, w)    // each worker's results
		spans  []span                 // where each frame's result is
		owner  = make(map[uint64]int) // state id -> worker
		who    []int                  // the worker of each frame
		next   int                    // the worker of the next new state
		wg     sync.WaitGroup
	)
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		packed := in.GetFrames()
		if r := in.GetShm(); r != nil {
			if packed, err = RegionBytes(s.Shared, r); err != nil {
				return fmt.Errorf("codec: batch %d: %w", in.GetTick(), err)
			}
		}
		// The answer goes into the region the host gave for it when it
		// fits (arena appends from its start; a move to the heap means it
		// did not), else in the answer's frames.
		var answer []byte
		if r := in.GetAnswer(); r != nil {
			if answer, err = RegionBytes(s.Shared, r); err != nil {
				return fmt.Errorf("codec: batch %d: answer: %w", in.GetTick(), err)
			}
		}
		frames = frames[:0]
		for b := packed; len(b) > 0; {
			var f Frame
			f, b, err = NextFrame(b)
			if err != nil {
				return fmt.Errorf("codec: batch %d: %w", in.GetTick(), err)
			}
			frames = append(frames, f)
		}
		heap := arena[:0]
		if answer != nil {
			arena = answer[:0]
		} else {
			arena = arena[:0]
		}
		// Which worker owns each frame's state: a new state goes to the
		// next worker in turn, so the calls spread evenly whatever their
		// ids. owner is this goroutine's alone.
		who = who[:0]
		for _, f := range frames {
			k, ok := owner[f.StateID]
			if !ok && (f.Op == codecv1.Op_OP_OPEN_ENCODER || f.Op == codecv1.Op_OP_OPEN_DECODER) && len(owner) < maxStates {
				k, next = next, (next+1)%w
				owner[f.StateID] = k
			}
			if f.Op == codecv1.Op_OP_CLOSE {
				delete(owner, f.StateID)
			}
			who = append(who, k)
		}
		if w == 1 || len(frames) < parallelMin {
			for i, f := range frames {
				arena = s.do(shards[who[i]], f, arena)
			}
		} else {
			spans = append(spans[:0], make([]span, len(frames))...)
			for k := range w {
				wg.Go(func() {
					part := parts[k][:0]
					for i, f := range frames {
						if who[i] != k {
							continue
						}
						start := len(part)
						part = s.do(shards[k], f, part)
						spans[i] = span{k, start, len(part)}
					}
					parts[k] = part
				})
			}
			wg.Wait()
			for _, sp := range spans {
				arena = append(arena, parts[sp.worker][sp.from:sp.to]...)
			}
		}
		out.Tick, out.Frames, out.Shm = in.GetTick(), arena, nil
		if answer != nil {
			if len(arena) == 0 || Aliases(arena, answer) {
				out.Frames, out.Shm = nil, &codecv1.Region{Offset: in.GetAnswer().GetOffset(), Length: uint64(len(arena))}
				arena = heap // keep the heap arena for the next batch
			}
		}
		// Send marshals before it returns: arena is free again after it.
		if err := stream.Send(out); err != nil {
			return err
		}
	}
}

// span locates one frame's result in a worker's output.
type span struct{ worker, from, to int }

// do runs one request and appends its result frame to out.
func (s *CodecServer) do(states map[uint64]*codecState, f Frame, out []byte) []byte {
	res := Frame{Op: f.Op, Seq: f.Seq, StateID: f.StateID}
	fail := func(err error) []byte {
		res.Err, res.Data = true, []byte(err.Error())
		return AppendFrame(out, res)
	}
	id := f.StateID
	switch f.Op {
	case codecv1.Op_OP_OPEN_ENCODER, codecv1.Op_OP_OPEN_DECODER:
		if _, ok := states[id]; ok {
			return fail(fmt.Errorf("state %d already open", id))
		}
		if len(states) >= maxStates {
			return fail(fmt.Errorf("too many states (%d)", maxStates))
		}
		c := s.lookup(string(f.Data))
		if c == nil {
			return fail(fmt.Errorf("codec %q: %w", f.Data, codecs.ErrUnknownCodec))
		}
		st := &codecState{}
		var err error
		if f.Op == codecv1.Op_OP_OPEN_ENCODER {
			st.enc, err = codecs.NewEncoder(c)
		} else {
			st.dec, err = codecs.NewDecoder(c)
			if err == nil {
				st.plc, _ = st.dec.(codecs.Concealer)
			}
		}
		if err != nil {
			return fail(err)
		}
		states[id] = st
		return AppendFrame(out, res)
	case codecv1.Op_OP_CLOSE:
		st, ok := states[id]
		if !ok {
			return fail(fmt.Errorf("close: state %d not open", id))
		}
		delete(states, id)
		if err := st.close(); err != nil {
			return fail(err)
		}
		return AppendFrame(out, res)
	}
	st, ok := states[id]
	if !ok {
		return fail(fmt.Errorf("%s: state %d not open", f.Op, id))
	}
	switch f.Op {
	case codecv1.Op_OP_ENCODE:
		if st.enc == nil {
			return fail(fmt.Errorf("encode: state %d is a decoder", id))
		}
		if len(f.Data)%2 != 0 || len(f.Data)/2 > MaxFrameSamples {
			return fail(fmt.Errorf("encode: %d bytes of PCM: want an even count up to %d", len(f.Data), 2*MaxFrameSamples))
		}
		pcm := st.frame(len(f.Data) / 2)
		PCMFromBytes(pcm, f.Data)
		hdr := len(out)
		out = AppendHeader(out, res, 0)
		start := len(out)
		out = grow(out, 2*len(pcm)+64)
		n, err := st.enc.Encode(out[start:cap(out)], pcm)
		if err != nil {
			return fail2(out[:hdr], res, err)
		}
		out = out[:start+n]
		putLen(out[hdr:], n)
		return out
	case codecv1.Op_OP_DECODE, codecv1.Op_OP_CONCEAL:
		if st.dec == nil {
			return fail(fmt.Errorf("%s: state %d is an encoder", f.Op, id))
		}
		pcm := st.frame(MaxFrameSamples)
		var n int
		var err error
		if f.Op == codecv1.Op_OP_DECODE {
			n, err = st.dec.Decode(pcm, f.Data)
		} else if st.plc == nil {
			err = errors.New("conceal: codec has no packet-loss concealment")
		} else {
			k := int(f.Samples)
			if k < 1 || k > MaxFrameSamples {
				return fail(fmt.Errorf("conceal: %d samples: want 1..%d", k, MaxFrameSamples))
			}
			n, err = st.plc.Conceal(pcm[:k])
		}
		if err != nil {
			return fail(err)
		}
		out = AppendHeader(out, res, 2*n)
		start := len(out)
		out = grow(out, 2*n)[:start+2*n]
		PCMToBytes(out[start:], pcm[:n])
		return out
	}
	return fail(fmt.Errorf("unknown op %d", f.Op))
}

func fail2(out []byte, res Frame, err error) []byte {
	res.Err, res.Data = true, []byte(err.Error())
	return AppendFrame(out, res)
}

// putLen rewrites the data length of the frame header at h.
func putLen(h []byte, n int) { binary.LittleEndian.PutUint32(h[20:], uint32(n)) }

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
	if littleEndian {
		// The wire's order is the machine's: one memmove (the loop below
		// was a fifth of a plugin's CPU per frame, docs/benchmarks.md §15).
		copy(dst, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(pcm))), 2*len(pcm)))
		return
	}
	for i, s := range pcm {
		binary.LittleEndian.PutUint16(dst[2*i:], uint16(s))
	}
}

// PCMFromBytes reads signed 16-bit little-endian src into dst
// (len(dst) >= len(src)/2).
func PCMFromBytes(dst []int16, src []byte) {
	dst = dst[:len(src)/2]
	if littleEndian {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 2*len(dst)), src)
		return
	}
	for i := range dst {
		dst[i] = int16(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

// littleEndian is whether this machine stores an int16 the way the wire
// does (little-endian), so PCM converts with a copy.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1
