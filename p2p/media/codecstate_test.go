package media

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
)

// statefulCodec wraps linearCodec as a codecs.Stateful, counting the
// per-call state it hands out and takes back, and marking concealed frames
// so the test sees the decoder's own concealment being used.
type statefulCodec struct {
	linearCodec
	frame                    time.Duration
	encs, decs, closed, plcs atomic.Int64
}

const concealMark = 1234

func (c *statefulCodec) Descriptor() codecs.Descriptor {
	d := c.linearCodec.Descriptor()
	d.FrameDuration = c.frame
	return d
}

func (c *statefulCodec) Encode([]byte, []int16) (int, error) { return 0, codecs.ErrStateful }
func (c *statefulCodec) Decode([]int16, []byte) (int, error) { return 0, codecs.ErrStateful }

func (c *statefulCodec) NewEncoder() (codecs.Encoder, error) {
	c.encs.Add(1)
	return &statefulState{c: c}, nil
}

func (c *statefulCodec) NewDecoder() (codecs.Decoder, error) {
	c.decs.Add(1)
	return &statefulState{c: c}, nil
}

type statefulState struct {
	c      *statefulCodec
	closed atomic.Bool
}

func (s *statefulState) Encode(dst []byte, pcm []int16) (int, error) {
	if s.closed.Load() {
		return 0, codecs.ErrClosed
	}
	return s.c.linearCodec.Encode(dst, pcm)
}

func (s *statefulState) Decode(dst []int16, p []byte) (int, error) {
	if s.closed.Load() {
		return 0, codecs.ErrClosed
	}
	return s.c.linearCodec.Decode(dst, p)
}

func (s *statefulState) Conceal(dst []int16) (int, error) {
	s.c.plcs.Add(1)
	for i := range dst {
		dst[i] = concealMark
	}
	return len(dst), nil
}

func (s *statefulState) Close() error {
	if !s.closed.Swap(true) {
		s.c.closed.Add(1)
	}
	return nil
}

// TestSessionCodecState: a session takes one encoder and one decoder from a
// stateful codec when it opens and closes both when it closes; frames lost
// on the way are filled by the decoder's own concealment (codecs.Concealer).
func TestSessionCodecState(t *testing.T) {
	t.Parallel()
	codec := &statefulCodec{linearCodec: linearCodec{pt: testPT}, frame: 20 * time.Millisecond}
	tone, _ := audio.NewTone(440, 8000, 0.3)
	rec := &countingSink{}
	a, err := Open(t.Context(), Config{Local: addr("127.0.0.1:0"), Codec: codec, Source: tone,
		Impairment: &Impairment{Loss: 0.3, Seed: 7}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(t.Context(), Config{Local: addr("127.0.0.1:0"), Codec: codec, Sink: rec})
	if err != nil {
		t.Fatal(err)
	}
	if e, d := codec.encs.Load(), codec.decs.Load(); e != 2 || d != 2 {
		t.Errorf("two sessions took %d encoders and %d decoders, want 2 and 2", e, d)
	}
	a.SetRemote(b.LocalAddr())
	b.SetRemote(a.LocalAddr())
	a.Start()
	b.Start()
	eventually(t, "concealed frames", func() bool { return codec.plcs.Load() >= 3 && b.Stats().FramesPlayed >= 10 })
	if st := b.Stats(); st.FramesConcealed == 0 || st.DecodeErrors != 0 {
		t.Errorf("receiver stats: concealed %d, decode errors %d", st.FramesConcealed, st.DecodeErrors)
	}
	if err := errors.Join(a.Close(), b.Close()); err != nil {
		t.Fatal(err)
	}
	if n := codec.closed.Load(); n != 4 {
		t.Errorf("%d of 4 codec states closed with the sessions", n)
	}
}

// TestSessionFrameDuration: a codec that works with one frame duration
// refuses any other ptime.
func TestSessionFrameDuration(t *testing.T) {
	t.Parallel()
	codec := &statefulCodec{linearCodec: linearCodec{pt: testPT}, frame: 20 * time.Millisecond}
	_, err := Open(t.Context(), Config{Local: addr("127.0.0.1:0"), Codec: codec, Ptime: 30 * time.Millisecond})
	if !errors.Is(err, ErrInvalidPtime) {
		t.Errorf("30 ms ptime with a 20 ms codec: %v, want ErrInvalidPtime", err)
	}
	if codec.encs.Load() != 0 {
		t.Errorf("a refused session took codec state")
	}
}
