package codecs

import (
	"errors"
	"testing"
)

// countingCodec is a stateful codec double: each encoder numbers its frames,
// so two calls sharing the codec show whether their state is separate.
type countingCodec struct{ closed *int }

func (countingCodec) Descriptor() Descriptor {
	return Descriptor{Name: "count", PayloadType: 96, SampleRate: 8000, ClockRate: 8000, Channels: 1}
}
func (countingCodec) Encode([]byte, []int16) (int, error) { return 0, ErrStateful }
func (countingCodec) Decode([]int16, []byte) (int, error) { return 0, ErrStateful }
func (c countingCodec) NewEncoder() (Encoder, error)      { return &countingEncoder{closed: c.closed}, nil }
func (c countingCodec) NewDecoder() (Decoder, error)      { return statelessDecoder{PCMU()}, nil }

type countingEncoder struct {
	n      byte
	closed *int
	done   bool
}

func (e *countingEncoder) Encode(dst []byte, _ []int16) (int, error) {
	if e.done {
		return 0, ErrClosed
	}
	e.n++
	dst[0] = e.n
	return 1, nil
}

func (e *countingEncoder) Close() error {
	if !e.done {
		e.done = true
		*e.closed++
	}
	return nil
}

// plainCodec is a stateless Codec that is not itself an Encoder/Decoder.
type plainCodec struct{}

func (plainCodec) Descriptor() Descriptor                  { return PCMA().Descriptor() }
func (plainCodec) Encode(d []byte, p []int16) (int, error) { return PCMA().Encode(d, p) }
func (plainCodec) Decode(d []int16, p []byte) (int, error) { return PCMA().Decode(d, p) }

func TestNewEncoderG711IsTheCodecItself(t *testing.T) {
	t.Parallel()
	for _, c := range []Codec{PCMU(), PCMA()} {
		enc, err := NewEncoder(c)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := NewDecoder(c)
		if err != nil {
			t.Fatal(err)
		}
		// No adapter in between: the per-frame call is the stateless one.
		if enc != Encoder(c.(Encoder)) || dec != Decoder(c.(Decoder)) {
			t.Errorf("%s: NewEncoder/NewDecoder = %T/%T, want the codec itself", c.Descriptor().Name, enc, dec)
		}
		if err := enc.Close(); err != nil {
			t.Error(err)
		}
	}
}

func TestNewEncoderStatefulPerCall(t *testing.T) {
	t.Parallel()
	closed := 0
	c := countingCodec{closed: &closed}
	a, err := NewEncoder(c)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewEncoder(c)
	buf := make([]byte, 1)
	for range 3 {
		_, _ = a.Encode(buf, nil)
	}
	if _, err := b.Encode(buf, nil); err != nil || buf[0] != 1 {
		t.Fatalf("second call's first frame = %d, %v; want 1 (own state)", buf[0], err)
	}
	_ = a.Close()
	_ = a.Close()
	if closed != 1 {
		t.Errorf("closed %d times, want 1 (Close idempotent)", closed)
	}
	if _, err := a.Encode(buf, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Encode after Close = %v, want ErrClosed", err)
	}
	if _, err := c.Encode(buf, nil); !errors.Is(err, ErrStateful) {
		t.Errorf("stateless Encode on a stateful codec = %v, want ErrStateful", err)
	}
}

func TestNewEncoderAdaptsPlainCodec(t *testing.T) {
	t.Parallel()
	enc, err := NewEncoder(plainCodec{})
	if err != nil {
		t.Fatal(err)
	}
	dec, _ := NewDecoder(plainCodec{})
	pcm := []int16{0, 1000, -1000, 32767}
	b := make([]byte, 4)
	n, err := enc.Encode(b, pcm)
	if err != nil || n != 4 {
		t.Fatal(n, err)
	}
	want := make([]byte, 4)
	_, _ = PCMA().Encode(want, pcm)
	if string(b) != string(want) {
		t.Errorf("adapter encodes %x, codec %x", b, want)
	}
	out := make([]int16, 4)
	if n, err := dec.Decode(out, b); err != nil || n != 4 {
		t.Fatal(n, err)
	}
	if _, err := NewEncoder(nil); !errors.Is(err, ErrInvalidDescriptor) {
		t.Errorf("NewEncoder(nil) = %v", err)
	}
}
