package media

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
)

// countingCodec is G.711 µ-law that counts its Encode and Decode calls, so
// a test can show that the payload path performs neither.
type countingCodec struct {
	codecs.Codec
	enc, dec atomic.Int64
}

func newCountingCodec() *countingCodec { return &countingCodec{Codec: codecs.PCMU()} }

func (c *countingCodec) Encode(dst []byte, pcm []int16) (int, error) {
	c.enc.Add(1)
	return c.Codec.Encode(dst, pcm)
}

func (c *countingCodec) Decode(dst []int16, p []byte) (int, error) {
	c.dec.Add(1)
	return c.Codec.Decode(dst, p)
}

// payloadSource gives frame k as samples bytes of value byte(k+1), or,
// with refuse set, no payload (it is then a plain silent Source).
type payloadSource struct {
	refuse     bool
	k          int
	asked      int
	reads      int
	lastCodec  codecs.Codec
	lastFrames int
}

func (s *payloadSource) ReadFrame(pcm []int16) error {
	s.reads++
	clear(pcm)
	return nil
}

func (s *payloadSource) ReadPayload(c codecs.Codec, samples int, dst []byte) (int, bool, error) {
	s.asked++
	s.lastCodec, s.lastFrames = c, samples
	if s.refuse {
		return 0, false, nil
	}
	s.k++
	for i := range dst[:samples] {
		dst[i] = byte(s.k)
	}
	return samples, true, nil
}

// payloadSink keeps the payloads it took (in a preallocated store) and
// counts PCM frames, refusing payloads when refuse is set.
type payloadSink struct {
	refuse   bool
	store    []byte
	payloads int
	frames   int
	lastPCM  []int16
}

func (s *payloadSink) WriteFrame(pcm []int16) error {
	s.frames++
	s.lastPCM = append(s.lastPCM[:0], pcm...)
	return nil
}

func (s *payloadSink) WritePayload(c codecs.Codec, samples int, p []byte) (bool, error) {
	if s.refuse {
		return false, nil
	}
	s.payloads++
	if len(s.store)+len(p) <= cap(s.store) {
		s.store = append(s.store, p...)
	}
	return true, nil
}

var (
	_ audio.PayloadSource = (*payloadSource)(nil)
	_ audio.PayloadSink   = (*payloadSink)(nil)
)

// The media engine sends what a PayloadSource gives without encoding it
// (its own sequence numbers and timestamps still advance), hands received
// frames to a PayloadSink without decoding them, and decodes only to
// conceal a lost packet (once, the last payload).
func TestEnginePayloadPassthrough(t *testing.T) {
	t.Parallel()
	codec := newCountingCodec()
	src := &payloadSource{}
	snd, err := newEngine(testSettings(t, Config{Codec: codec, Source: src}), 0x1111)
	if err != nil {
		t.Fatal(err)
	}
	sink := &payloadSink{store: make([]byte, 0, 64*160)}
	rcv, err := newEngine(testSettings(t, Config{Codec: codec, Sink: sink}), 0x2222)
	if err != nil {
		t.Fatal(err)
	}
	const frames = 20
	const lost = 10 // the 11th packet never arrives
	at := time.Unix(1_700_000_000, 0)
	var first rtp.Header
	for k := range frames {
		b, err := snd.send.next(src)
		if err != nil {
			t.Fatal(err)
		}
		var p rtp.Packet
		if err := p.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		if k == 0 {
			first = p.Header
		}
		if want := bytes.Repeat([]byte{byte(k + 1)}, 160); !bytes.Equal(p.Payload, want) {
			t.Fatalf("packet %d carries %x..., want the source's frame %x...", k, p.Payload[:4], want[:4])
		}
		if p.SequenceNumber != first.SequenceNumber+uint16(k) || p.Timestamp != first.Timestamp+uint32(160*k) {
			t.Fatalf("packet %d: seq %d ts %d, want %d and %d", k, p.SequenceNumber, p.Timestamp, first.SequenceNumber+uint16(k), first.Timestamp+uint32(160*k))
		}
		if k != lost {
			if v := rcv.recv.receive(b, at); v != verdictAccepted {
				t.Fatalf("packet %d: %v", k, v)
			}
		}
		rcv.playout(at)
		at = at.Add(20 * time.Millisecond)
	}
	for range 2 { // the jitter delay (40 ms): the last two frames
		rcv.playout(at)
		at = at.Add(20 * time.Millisecond)
	}
	if src.lastCodec != codecs.Codec(codec) || src.lastFrames != 160 {
		t.Errorf("ReadPayload got codec %v and %d samples, want the call's codec and 160", src.lastCodec, src.lastFrames)
	}
	if src.reads != 0 {
		t.Errorf("the engine read %d PCM frames from a source that gave payloads", src.reads)
	}
	if n := codec.enc.Load(); n != 0 {
		t.Errorf("%d Encode calls on the payload path, want 0", n)
	}
	if got := snd.stats().PayloadsSent; got != frames {
		t.Errorf("PayloadsSent %d, want %d", got, frames)
	}
	if sink.payloads != frames-1 {
		t.Errorf("sink took %d payloads, want %d", sink.payloads, frames-1)
	}
	for k := range frames - 1 {
		want := byte(k + 1)
		if k >= lost {
			want = byte(k + 2)
		}
		if got := sink.store[k*160]; got != want {
			t.Fatalf("payload %d played is %x, want %x", k, got, want)
		}
	}
	// The lost packet: concealed as PCM, after one decode of the payload
	// before it (the fade of the last frame).
	if sink.frames != 1 {
		t.Errorf("sink got %d PCM frames, want 1 (the concealed loss)", sink.frames)
	}
	if n := codec.dec.Load(); n != 1 {
		t.Errorf("%d Decode calls, want 1 (the last payload before the loss)", n)
	}
	want := make([]int16, 160)
	conceal(want, decodeAll(t, bytes.Repeat([]byte{byte(lost)}, 160)), 1)
	if !equalPCM(sink.lastPCM, want) {
		t.Errorf("concealed frame %v..., want the faded last payload %v...", sink.lastPCM[:4], want[:4])
	}
	st := rcv.stats()
	if st.PayloadsPlayed != frames-1 || st.FramesConcealed != 1 {
		t.Errorf("PayloadsPlayed %d FramesConcealed %d, want %d and 1", st.PayloadsPlayed, st.FramesConcealed, frames-1)
	}
}

// A PayloadSource or PayloadSink that declines (another codec) gets the
// PCM path: encode and decode as for a plain Source and Sink.
func TestEnginePayloadDeclined(t *testing.T) {
	t.Parallel()
	codec := newCountingCodec()
	src := &payloadSource{refuse: true}
	snd, err := newEngine(testSettings(t, Config{Codec: codec, Source: src}), 0x1111)
	if err != nil {
		t.Fatal(err)
	}
	sink := &payloadSink{refuse: true}
	rcv, err := newEngine(testSettings(t, Config{Codec: codec, Sink: sink}), 0x2222)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1_700_000_000, 0)
	const frames = 10
	for range frames {
		b, err := snd.send.next(src)
		if err != nil {
			t.Fatal(err)
		}
		if v := rcv.recv.receive(b, at); v != verdictAccepted {
			t.Fatal(v)
		}
		rcv.playout(at)
		at = at.Add(20 * time.Millisecond)
	}
	if src.asked != frames || src.reads != frames || codec.enc.Load() != frames {
		t.Errorf("asked %d, read %d, encoded %d; want %d each", src.asked, src.reads, codec.enc.Load(), frames)
	}
	played := rcv.stats().FramesPlayed
	if played == 0 || uint64(sink.frames) != played || codec.dec.Load() != int64(played) || sink.payloads != 0 {
		t.Errorf("played %d: sink frames %d, decodes %d, payloads %d", played, sink.frames, codec.dec.Load(), sink.payloads)
	}
	if st := snd.stats(); st.PayloadsSent != 0 {
		t.Errorf("PayloadsSent %d for a declining source", st.PayloadsSent)
	}
}

// The payload path allocates nothing per packet, either way.
func TestEnginePayloadAllocs(t *testing.T) {
	codec := codecs.PCMU()
	src := &payloadSource{}
	snd, err := newEngine(testSettings(t, Config{Codec: codec, Source: src, SendKeys: mustKeys(t), RecvKeys: mustKeys(t)}), 0x1111)
	if err != nil {
		t.Fatal(err)
	}
	sink := &payloadSink{}
	rcv, err := newEngine(testSettings(t, Config{Codec: codec, Sink: sink}), 0x2222)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := newEngine(testSettings(t, Config{Codec: codec, Source: src}), 0x3333)
	if err != nil {
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(200, func() {
		if _, err := snd.send.next(src); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("payload send (SRTP): %v allocations per packet", a)
	}
	at := time.Unix(1_700_000_000, 0)
	buf := make([]byte, 1500)
	if a := testing.AllocsPerRun(200, func() {
		b, err := plain.send.next(src)
		if err != nil {
			t.Fatal(err)
		}
		n := copy(buf, b)
		rcv.recv.receive(buf[:n], at)
		rcv.playout(at)
		at = at.Add(20 * time.Millisecond)
	}); a != 0 {
		t.Errorf("payload receive and playout: %v allocations per packet", a)
	}
	if sink.payloads == 0 {
		t.Fatal("the sink took no payload")
	}
}

func decodeAll(t *testing.T, p []byte) []int16 {
	t.Helper()
	pcm := make([]int16, len(p))
	n, err := codecs.PCMU().Decode(pcm, p)
	if err != nil {
		t.Fatal(err)
	}
	return pcm[:n]
}

func equalPCM(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
