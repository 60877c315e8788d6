package plugins

import (
	"errors"
	"math"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/baton-voice/baton/codecs"
)

// toneFrame fills a 160-sample frame of a 440 Hz + 1330 Hz mix starting at
// sample offset off.
func toneFrame(off int) []int16 {
	pcm := make([]int16, 160)
	for i := range pcm {
		t := float64(off+i) / 8000
		pcm[i] = int16(12000*math.Sin(2*math.Pi*440*t) + 6000*math.Sin(2*math.Pi*1330*t))
	}
	return pcm
}

func loadTestCodecs(t *testing.T) (*CodecClient, map[string]codecs.Codec) {
	t.Helper()
	cfg := CodecConfig{Config: fastConfig(t, builds.Bin(t, pkgTest), "-mode", "codec"), FrameTimeout: 2 * time.Second}
	c, err := NewCodecClient(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	byName := make(map[string]codecs.Codec)
	for _, cd := range c.Codecs() {
		byName[cd.Descriptor().Name] = cd
	}
	return c, byName
}

// TestCodecPluginG711MatchesInProcess runs G.711 in the test plugin over
// the codec protocol and compares every frame, both ways, with the
// in-process codec: bit-exact.
func TestCodecPluginG711MatchesInProcess(t *testing.T) {
	t.Parallel()
	_, byName := loadTestCodecs(t)
	for _, local := range []codecs.Codec{codecs.PCMU(), codecs.PCMA()} {
		name := local.Descriptor().Name
		remote, ok := byName[name]
		if !ok {
			t.Fatalf("plugin does not list %s (has %v)", name, byName)
		}
		if remote.Descriptor() != local.Descriptor() {
			t.Errorf("%s descriptor over the wire = %+v, want %+v", name, remote.Descriptor(), local.Descriptor())
		}
		enc, err := codecs.NewEncoder(remote)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := codecs.NewDecoder(remote)
		if err != nil {
			t.Fatal(err)
		}
		got, want := make([]byte, 200), make([]byte, 200)
		gotPCM, wantPCM := make([]int16, 200), make([]int16, 200)
		for f := range 20 {
			pcm := toneFrame(160 * f)
			n, err := enc.Encode(got, pcm)
			if err != nil {
				t.Fatalf("%s frame %d: encode: %v", name, f, err)
			}
			m, _ := local.Encode(want, pcm)
			if n != m || string(got[:n]) != string(want[:m]) {
				t.Fatalf("%s frame %d: plugin encodes %d bytes %x..., in-process %d bytes %x...", name, f, n, got[:8], m, want[:8])
			}
			k, err := dec.Decode(gotPCM, got[:n])
			if err != nil {
				t.Fatalf("%s frame %d: decode: %v", name, f, err)
			}
			j, _ := local.Decode(wantPCM, want[:m])
			if k != j || !equalPCM(gotPCM[:k], wantPCM[:j]) {
				t.Fatalf("%s frame %d: plugin decodes differently from in-process", name, f)
			}
		}
		if _, err := remote.Encode(got, toneFrame(0)); !errors.Is(err, codecs.ErrStateful) {
			t.Errorf("stateless Encode on a plugin codec = %v, want ErrStateful", err)
		}
		_ = enc.Close()
		_ = dec.Close()
		if _, err := enc.Encode(got, toneFrame(0)); !errors.Is(err, codecs.ErrClosed) {
			t.Errorf("Encode after Close = %v, want ErrClosed", err)
		}
	}
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

// TestCodecPluginPerCallStateAndBatching runs many calls of the stateful
// x-delta codec at once through the one stream: every call's audio comes
// back exact (its state is its own in the plugin), frames of several calls
// share batches, and the decoder's own concealment is served.
func TestCodecPluginPerCallStateAndBatching(t *testing.T) {
	t.Parallel()
	c, byName := loadTestCodecs(t)
	delta := byName["x-delta"]
	const calls, frames = 64, 25
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for call := range calls {
		wg.Go(func() {
			enc, err := codecs.NewEncoder(delta)
			if err != nil {
				errs <- err
				return
			}
			defer enc.Close()
			dec, err := codecs.NewDecoder(delta)
			if err != nil {
				errs <- err
				return
			}
			defer dec.Close()
			payload, out := make([]byte, 400), make([]int16, 200)
			for f := range frames {
				pcm := toneFrame(160*f + 37*call) // each call its own audio
				n, err := enc.Encode(payload, pcm)
				if err != nil {
					errs <- err
					return
				}
				k, err := dec.Decode(out, payload[:n])
				if err != nil {
					errs <- err
					return
				}
				if !equalPCM(out[:k], pcm) {
					errs <- errors.New("call's audio came back altered: state not per call")
					return
				}
			}
			plc := dec.(codecs.Concealer)
			k, err := plc.Conceal(out[:160])
			if err != nil || !equalPCM(out[:k], toneFrame(160*(frames-1)+37*call)) {
				errs <- errors.New("conceal did not repeat the last frame")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := c.Stats()
	t.Logf("stats: %+v", st)
	if st.Frames < calls*frames*2 {
		t.Errorf("frames sent = %d, want >= %d", st.Frames, calls*frames*2)
	}
	if st.Batches >= st.Frames {
		t.Errorf("%d batches for %d frames: frames of concurrent calls were not batched", st.Batches, st.Frames)
	}
}

// TestCodecPluginKilledCallsSurvive kills the plugin with SIGKILL while a
// call runs: frames fail (the media engine sends nothing or conceals for
// them) with ErrUnavailable, the supervisor restarts the plugin, and the
// same encoder and decoder work again, their state reopened in the new
// process.
func TestCodecPluginKilledCallsSurvive(t *testing.T) {
	t.Parallel()
	c, byName := loadTestCodecs(t)
	delta := byName["x-delta"]
	enc, _ := codecs.NewEncoder(delta)
	dec, _ := codecs.NewDecoder(delta)
	defer enc.Close()
	defer dec.Close()
	payload, out := make([]byte, 400), make([]int16, 200)
	roundTrip := func(f int) error {
		pcm := toneFrame(160 * f)
		n, err := enc.Encode(payload, pcm)
		if err != nil {
			return err
		}
		_, err = dec.Decode(out, payload[:n])
		return err
	}
	if err := roundTrip(0); err != nil {
		t.Fatal(err)
	}
	pid := c.Supervisor().PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	sawFail := false
	f := 1
	eventually(t, "frames work again after the restart", func() bool {
		f++
		err := roundTrip(f)
		if err != nil {
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("frame while the plugin is down: %v, want ErrUnavailable", err)
			}
			sawFail = true
			return false
		}
		return sawFail && c.Supervisor().PID() != pid
	})
	st := c.Stats()
	t.Logf("stats: %+v, supervisor %+v", st, c.Supervisor().Stats())
	if st.Streams < 2 || st.Reopened < 2 {
		t.Errorf("streams %d, reopened %d: want a new stream and both states reopened", st.Streams, st.Reopened)
	}
	// The reopened decoder has fresh state, in step with the reopened
	// encoder: audio is exact again.
	pcm := toneFrame(0)
	n, _ := enc.Encode(payload, pcm)
	k, err := dec.Decode(out, payload[:n])
	if err != nil || !equalPCM(out[:k], pcm) {
		t.Errorf("after restart: decode %v, exact %v", err, equalPCM(out[:k], pcm))
	}
}

// TestCodecPluginOutageNotified: SIGKILL of the plugin is reported to
// OnOutage (the fallback trigger), naming the plugin and its codecs, once
// per outage; a client without OnOutage runs as before.
func TestCodecPluginOutageNotified(t *testing.T) {
	t.Parallel()
	got := make(chan Outage, 4)
	cfg := CodecConfig{Config: fastConfig(t, builds.Bin(t, pkgTest), "-mode", "codec"), FrameTimeout: 2 * time.Second,
		OnOutage: func(o Outage) { got <- o }}
	c, err := NewCodecClient(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	select {
	case o := <-got:
		t.Fatalf("outage %+v before anything died", o)
	case <-time.After(100 * time.Millisecond):
	}
	pid := c.Supervisor().PID()
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var o Outage
	select {
	case o = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no outage reported after SIGKILL")
	}
	t.Logf("outage reported %v after the kill: %+v", o.At.Sub(killed), o)
	if o.Plugin == "" || o.Err == nil || len(o.Codecs) != len(c.Codecs()) || o.At.Before(killed) {
		t.Errorf("outage %+v, want the plugin's name, its %d codecs, an error, a time after the kill", o, len(c.Codecs()))
	}
	eventually(t, "the plugin restarted", func() bool { return c.Supervisor().PID() != pid && c.Stats().Streams >= 2 })
	select {
	case o := <-got:
		t.Errorf("a second outage %+v for one kill", o)
	case <-time.After(200 * time.Millisecond):
	}
}
