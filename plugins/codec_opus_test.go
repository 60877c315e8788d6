package plugins

import (
	"net/netip"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/media"
)

const pkgOpus = "github.com/baton-voice/baton/plugins/cmd/codec-opus"

// opusPlugin builds and loads the codec-opus plugin, or skips the test
// when libopus is not installed (the plugin needs cgo and pkg-config opus;
// CI installs libopus-dev with .ci/deps.sh).
func opusPlugin(t *testing.T, args ...string) (*CodecClient, codecs.Codec) {
	t.Helper()
	if err := exec.Command("pkg-config", "--exists", "opus").Run(); err != nil {
		t.Skipf("codec-opus needs libopus: `pkg-config --exists opus` failed (%v); install libopus-dev and pkg-config", err)
	}
	if out, _ := exec.Command("go", "env", "CGO_ENABLED").Output(); string(out) == "0\n" {
		t.Skip("codec-opus needs cgo: CGO_ENABLED=0")
	}
	cfg := CodecConfig{Config: fastConfig(t, builds.Bin(t, pkgOpus), args...), FrameTimeout: 2 * time.Second}
	c, err := NewCodecClient(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if len(c.Codecs()) != 1 {
		t.Fatalf("codec-opus serves %d codecs, want 1", len(c.Codecs()))
	}
	return c, c.Codecs()[0]
}

// TestCodecPluginOpusTone encodes and decodes a tone through the Opus
// plugin and checks the decoded tone's frequency and energy, and that the
// plugin's decoder serves libopus' concealment.
func TestCodecPluginOpusTone(t *testing.T) {
	t.Parallel()
	_, opus := opusPlugin(t, "-rate", "16000")
	d := opus.Descriptor()
	if d.Name != "opus" || d.ClockRate != 48000 || d.Channels != 2 || d.SampleRate != 16000 || d.FrameDuration != 20*time.Millisecond {
		t.Fatalf("descriptor %+v: want opus/48000/2, 16 kHz PCM, 20 ms frames", d)
	}
	enc, err := codecs.NewEncoder(opus)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	dec, _ := codecs.NewDecoder(opus)
	defer dec.Close()
	src, _ := audio.NewTone(1000, 16000, 0.3)
	pcm, out, pkt := make([]int16, 320), make([]int16, 320), make([]byte, 1500)
	var got []int16
	for range 50 {
		_ = src.ReadFrame(pcm)
		n, err := enc.Encode(pkt, pcm)
		if err != nil {
			t.Fatal(err)
		}
		if n >= 2*len(pcm) {
			t.Fatalf("opus frame of %d bytes: not compressed", n)
		}
		k, err := dec.Decode(out, pkt[:n])
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, out[:k]...)
	}
	tail := got[len(got)/2:]
	if f := audio.DominantFrequency(tail, 16000, []float64{500, 1000, 1500, 2000}); f != 1000 {
		t.Errorf("decoded dominant frequency %v Hz, want 1000", f)
	}
	if rms := audio.RMS(tail); rms < 0.15 || rms > 0.27 {
		t.Errorf("decoded RMS %.3f, want about 0.212 (0.3 peak sine)", rms)
	}
	k, err := dec.(codecs.Concealer).Conceal(out)
	if err != nil || k != 320 || audio.RMS(out[:k]) < 0.05 {
		t.Errorf("plugin concealment: %d samples, RMS %.3f, %v", k, audio.RMS(out[:k]), err)
	}
}

// recorder is an audio.Sink keeping everything played.
type recorder struct {
	mu  sync.Mutex
	pcm []int16
}

func (r *recorder) WriteFrame(pcm []int16) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pcm = append(r.pcm, pcm...)
	return nil
}

func (r *recorder) samples() []int16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int16(nil), r.pcm...)
}

// TestCodecPluginOpusMediaSessions runs two real media sessions on
// loopback with the plugin's Opus codec, each with its own per-call
// encoder and decoder in the one plugin process: each side hears the
// other's tone.
func TestCodecPluginOpusMediaSessions(t *testing.T) {
	t.Parallel()
	_, opus := opusPlugin(t, "-rate", "16000")
	ctx := t.Context()
	open := func(hz float64, rec *recorder) *media.Session {
		src, _ := audio.NewTone(hz, 16000, 0.3)
		s, err := media.Open(ctx, media.Config{
			Local: netip.MustParseAddrPort("127.0.0.1:0"), Codec: opus, Ptime: 20 * time.Millisecond,
			Source: src, Sink: rec,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
		return s
	}
	recA, recB := &recorder{}, &recorder{}
	a, b := open(600, recA), open(1000, recB)
	a.SetRemote(b.LocalAddr())
	b.SetRemote(a.LocalAddr())
	a.Start()
	b.Start()
	eventually(t, "a second of audio each way", func() bool {
		return len(recA.samples()) >= 16000*3/2 && len(recB.samples()) >= 16000*3/2
	})
	for _, tc := range []struct {
		name string
		rec  *recorder
		want float64
	}{{"a hears b", recA, 1000}, {"b hears a", recB, 600}} {
		pcm := tc.rec.samples()
		tail := pcm[len(pcm)-16000:]
		if f := audio.DominantFrequency(tail, 16000, []float64{600, 1000}); f != tc.want {
			t.Errorf("%s: dominant %v Hz, want %v", tc.name, f, tc.want)
		}
		if rms := audio.RMS(tail); rms < 0.1 {
			t.Errorf("%s: RMS %.3f: mostly silence", tc.name, rms)
		}
	}
	st := a.Stats()
	t.Logf("a: sent %d, received %d, played %d, concealed %d, decode errors %d", st.PacketsSent, st.PacketsReceived, st.FramesPlayed, st.FramesConcealed, st.DecodeErrors)
	if st.DecodeErrors != 0 {
		t.Errorf("decode errors %d", st.DecodeErrors)
	}
}
