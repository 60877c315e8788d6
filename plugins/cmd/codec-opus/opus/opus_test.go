package opus

import (
	"errors"
	"testing"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
)

// skipWithoutLibopus skips when this build has no libopus.
func skipWithoutLibopus(t testing.TB) {
	t.Helper()
	if !available {
		t.Skip("opus: built without cgo/libopus (install libopus-dev and pkg-config, CGO_ENABLED=1)")
	}
}

// tone returns frames of a hz sine at rate.
func tone(t testing.TB, hz float64, rate, frames int) [][]int16 {
	t.Helper()
	src, err := audio.NewTone(hz, rate, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]int16, frames)
	for i := range out {
		out[i] = make([]int16, rate/50)
		if err := src.ReadFrame(out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestToneRoundTrip encodes 1 s of a tone and checks that the decoded
// audio holds that tone (dominant frequency) at about its energy, at every
// supported rate.
func TestToneRoundTrip(t *testing.T) {
	skipWithoutLibopus(t)
	t.Parallel()
	for _, tc := range []struct {
		name string
		rate int
		hz   float64
	}{
		{"narrowband", 8000, 440},
		{"wideband", 16000, 1000},
		{"fullband", 48000, 3000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := New(Config{SampleRate: tc.rate})
			if err != nil {
				t.Fatal(err)
			}
			d := c.Descriptor()
			if d.ClockRate != 48000 || d.Channels != 2 || d.Name != "opus" || d.SamplesPerFrame(Frame) != tc.rate/50 {
				t.Errorf("descriptor %+v: want opus/48000/2 with %d samples per 20 ms", d, tc.rate/50)
			}
			enc, _ := c.NewEncoder()
			dec, _ := c.NewDecoder()
			defer enc.Close()
			defer dec.Close()
			in := tone(t, tc.hz, tc.rate, 50)
			var got, sent []int16
			pkt, out := make([]byte, 1500), make([]int16, tc.rate/50)
			bytes := 0
			for _, f := range in {
				n, err := enc.Encode(pkt, f)
				if err != nil {
					t.Fatal(err)
				}
				bytes += n
				k, err := dec.Decode(out, pkt[:n])
				if err != nil || k != len(f) {
					t.Fatalf("decode: %d samples, %v", k, err)
				}
				got = append(got, out[:k]...)
				sent = append(sent, f...)
			}
			// Skip the codec's start-up (look-ahead) frames.
			tail := got[len(got)/2:]
			cands := []float64{tc.hz / 2, tc.hz, tc.hz * 1.5, tc.hz * 2}
			if f := audio.DominantFrequency(tail, tc.rate, cands); f != tc.hz {
				t.Errorf("decoded dominant frequency %v Hz, want %v", f, tc.hz)
			}
			rin, rout := audio.RMS(sent[len(sent)/2:]), audio.RMS(tail)
			if rout < 0.7*rin || rout > 1.3*rin {
				t.Errorf("decoded RMS %.3f, sent %.3f: energy not kept", rout, rin)
			}
			t.Logf("%d Hz PCM: %d bytes/s (%.1f kbit/s), RMS in %.3f out %.3f", tc.rate, bytes, float64(bytes*8)/1000, rin, rout)
		})
	}
}

// TestConcealment checks libopus' PLC: a lost frame gives a full frame
// that continues the tone instead of silence.
func TestConcealment(t *testing.T) {
	skipWithoutLibopus(t)
	t.Parallel()
	c, _ := New(Config{SampleRate: 16000})
	enc, _ := c.NewEncoder()
	dec, _ := c.NewDecoder()
	defer enc.Close()
	defer dec.Close()
	pkt, out := make([]byte, 1500), make([]int16, 320)
	for _, f := range tone(t, 800, 16000, 20) {
		n, _ := enc.Encode(pkt, f)
		if _, err := dec.Decode(out, pkt[:n]); err != nil {
			t.Fatal(err)
		}
	}
	plc, ok := codecs.Decoder(dec).(codecs.Concealer)
	if !ok {
		t.Fatal("opus decoder does not implement codecs.Concealer")
	}
	k, err := plc.Conceal(out)
	if err != nil || k != 320 {
		t.Fatalf("conceal: %d, %v", k, err)
	}
	if rms := audio.RMS(out[:k]); rms < 0.05 {
		t.Errorf("concealed frame RMS %.3f: PLC gave (near) silence", rms)
	}
	if f := audio.DominantFrequency(out[:k], 16000, []float64{400, 800, 1600}); f != 800 {
		t.Errorf("concealed frame dominant frequency %v, want 800", f)
	}
}

func TestErrors(t *testing.T) {
	skipWithoutLibopus(t)
	t.Parallel()
	if _, err := New(Config{SampleRate: 44100}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("44.1 kHz: %v, want ErrInvalidConfig", err)
	}
	if _, err := New(Config{PayloadType: 8}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("static payload type: %v, want ErrInvalidConfig", err)
	}
	c, _ := New(Config{})
	if _, err := c.Encode(nil, nil); !errors.Is(err, codecs.ErrStateful) {
		t.Errorf("stateless Encode: %v", err)
	}
	enc, _ := c.NewEncoder()
	if _, err := enc.Encode(make([]byte, 100), make([]int16, 100)); err == nil {
		t.Error("encode of a 100-sample frame at 48 kHz: no error")
	}
	_ = enc.Close()
	_ = enc.Close()
	if _, err := enc.Encode(make([]byte, 100), make([]int16, 960)); !errors.Is(err, codecs.ErrClosed) {
		t.Errorf("encode after close: %v", err)
	}
	dec, _ := c.NewDecoder()
	defer dec.Close()
	if _, err := dec.Decode(make([]int16, 960), []byte{0xff, 0xff, 0xff}); err == nil {
		t.Error("decode of garbage: no error")
	}
}

// FuzzDecode feeds arbitrary payloads to the decoder: it returns an error
// or at most one buffer of samples, never crashes.
func FuzzDecode(f *testing.F) {
	if !available {
		f.Skip("opus: built without libopus")
	}
	c, _ := New(Config{SampleRate: 16000})
	enc, _ := c.NewEncoder()
	pkt := make([]byte, 1500)
	n, _ := enc.Encode(pkt, make([]int16, 320))
	f.Add(pkt[:n])
	f.Add([]byte{0xfc, 0xff, 0xfe})
	f.Fuzz(func(t *testing.T, payload []byte) {
		dec, _ := c.NewDecoder()
		defer dec.Close()
		out := make([]int16, 5760)
		k, err := dec.Decode(out, payload)
		if err == nil && (k < 0 || k > len(out)) {
			t.Fatalf("decoded %d samples into %d", k, len(out))
		}
	})
}
