package protocol

import (
	"bytes"
	"errors"
	"testing"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/plugins/internal/pb/codecv1"
)

func TestFrameRoundTrip(t *testing.T) {
	t.Parallel()
	in := []Frame{
		{Op: codecv1.Op_OP_OPEN_ENCODER, StateID: 1, Data: []byte("opus")},
		{Op: codecv1.Op_OP_ENCODE, StateID: 1, Seq: 9, Data: make([]byte, 320)},
		{Op: codecv1.Op_OP_CONCEAL, StateID: 1 << 40, Seq: 1<<32 - 1, Samples: 960},
		{Op: codecv1.Op_OP_DECODE, Err: true, StateID: 2, Data: []byte("bad payload")},
	}
	var b []byte
	for _, f := range in {
		b = AppendFrame(b, f)
	}
	for i, want := range in {
		got, rest, err := NextFrame(b)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.Op != want.Op || got.Err != want.Err || got.Seq != want.Seq || got.StateID != want.StateID ||
			got.Samples != want.Samples || !bytes.Equal(got.Data, want.Data) {
			t.Errorf("frame %d = %+v, want %+v", i, got, want)
		}
		b = rest
	}
	if len(b) != 0 {
		t.Errorf("%d bytes left", len(b))
	}
}

func TestNextFrameErrors(t *testing.T) {
	t.Parallel()
	good := AppendFrame(nil, Frame{Op: codecv1.Op_OP_ENCODE, Data: []byte{1, 2}})
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"short header", good[:10]},
		{"truncated data", good[:len(good)-1]},
		{"op 0", mut(func(b []byte) []byte { b[0] = 0; return b })},
		{"op 99", mut(func(b []byte) []byte { b[0] = 99; return b })},
		{"status 2", mut(func(b []byte) []byte { b[1] = 2; return b })},
		{"reserved", mut(func(b []byte) []byte { b[3] = 1; return b })},
		{"huge length", mut(func(b []byte) []byte { b[23] = 0x7f; return b })},
	} {
		if _, _, err := NextFrame(tc.b); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: %v, want ErrBadFrame", tc.name, err)
		}
	}
}

// FuzzNextFrame: any input is either refused with ErrBadFrame or parses
// to a frame that packs back to exactly the bytes read.
func FuzzNextFrame(f *testing.F) {
	f.Add(AppendFrame(nil, Frame{Op: codecv1.Op_OP_ENCODE, StateID: 3, Seq: 1, Data: make([]byte, 320)}))
	f.Add(AppendFrame(AppendFrame(nil, Frame{Op: codecv1.Op_OP_CLOSE, StateID: 1}), Frame{Op: codecv1.Op_OP_DECODE, Err: true, Data: []byte("x")}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		for len(b) > 0 {
			fr, rest, err := NextFrame(b)
			if err != nil {
				if !errors.Is(err, ErrBadFrame) {
					t.Fatalf("error %v does not wrap ErrBadFrame", err)
				}
				return
			}
			used := b[:len(b)-len(rest)]
			if again := AppendFrame(nil, fr); !bytes.Equal(again, used) {
				t.Fatalf("frame %+v packs to %x, read from %x", fr, again, used)
			}
			b = rest
		}
	})
}

// FuzzCodecServer runs arbitrary packed frames through the codec server's
// request handling (with G.711 served): every well-formed frame gets
// exactly one well-formed result with its op, seq and state id, whatever
// order of opens, closes and frames it comes in.
func FuzzCodecServer(f *testing.F) {
	var seed []byte
	seed = AppendFrame(seed, Frame{Op: codecv1.Op_OP_OPEN_ENCODER, StateID: 1, Data: []byte("PCMU")})
	seed = AppendFrame(seed, Frame{Op: codecv1.Op_OP_ENCODE, StateID: 1, Seq: 1, Data: make([]byte, 320)})
	seed = AppendFrame(seed, Frame{Op: codecv1.Op_OP_OPEN_DECODER, StateID: 2, Data: []byte("pcma")})
	seed = AppendFrame(seed, Frame{Op: codecv1.Op_OP_DECODE, StateID: 2, Seq: 1, Data: make([]byte, 160)})
	seed = AppendFrame(seed, Frame{Op: codecv1.Op_OP_CONCEAL, StateID: 2, Seq: 2, Samples: 160})
	seed = AppendFrame(seed, Frame{Op: codecv1.Op_OP_CLOSE, StateID: 1})
	f.Add(seed)
	f.Add(AppendFrame(nil, Frame{Op: codecv1.Op_OP_ENCODE, StateID: 9, Data: []byte{1}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &CodecServer{Codecs: []codecs.Codec{codecs.PCMU(), codecs.PCMA()}}
		states := map[uint64]*codecState{}
		for len(b) > 0 {
			in, rest, err := NextFrame(b)
			if err != nil {
				return
			}
			b = rest
			out := s.do(states, in, nil)
			res, left, err := NextFrame(out)
			if err != nil || len(left) != 0 {
				t.Fatalf("result of %+v: %v, %d bytes more", in, err, len(left))
			}
			if res.Op != in.Op || res.Seq != in.Seq || res.StateID != in.StateID {
				t.Fatalf("result %+v does not answer %+v", res, in)
			}
		}
	})
}
