package plugins

import (
	"fmt"
	"testing"
	"time"

	"github.com/baton-voice/baton/codecs"
)

// shmRounds runs rounds batches of calls x-delta calls (each an encode
// and the decode of the call's previous frame) and checks every call's
// audio comes back exact.
func shmRounds(t *testing.T, delta codecs.BatchCodec, calls, rounds int) {
	t.Helper()
	type call struct {
		enc     codecs.Encoder
		dec     codecs.Decoder
		payload []byte
		prev    []byte
		out     []int16
	}
	cs := make([]call, calls)
	for i := range cs {
		enc, _ := codecs.NewEncoder(delta)
		dec, _ := codecs.NewDecoder(delta)
		t.Cleanup(func() { _ = enc.Close(); _ = dec.Close() })
		cs[i] = call{enc: enc, dec: dec, payload: make([]byte, 400), prev: make([]byte, 0, 400), out: make([]int16, 200)}
	}
	for k := range rounds {
		var jobs []codecs.Job
		for i := range cs {
			c := &cs[i]
			jobs = append(jobs, codecs.Job{Op: codecs.JobEncode, Enc: c.enc, PCM: toneFrame(160*k + 37*i), Payload: c.payload})
			if k > 0 {
				jobs = append(jobs, codecs.Job{Op: codecs.JobDecode, Dec: c.dec, PCM: c.out, Payload: c.prev})
			}
		}
		delta.Batch(jobs)
		for j, job := range jobs {
			if job.Err != nil {
				t.Fatalf("round %d job %d (%v): %v", k, j, job.Op, job.Err)
			}
		}
		for i := range cs {
			c := &cs[i]
			if k > 0 {
				dj := jobs[2*i+1]
				if !equalPCM(c.out[:dj.N], toneFrame(160*(k-1)+37*i)) {
					t.Fatalf("round %d call %d: audio came back altered", k, i)
				}
				c.prev = append(c.prev[:0], c.payload[:jobs[2*i].N]...)
			} else {
				c.prev = append(c.prev[:0], c.payload[:jobs[i].N]...)
			}
		}
	}
}

// TestCodecPluginSharedMemory: toward a plugin that maps the shared
// memory region the host passed it, batches and their answers go through
// the region, not the stream, and the audio is the same; with the host's
// NoSharedMemory, or toward a plugin from before the region (it does not
// say shared_memory), every batch goes through the stream and works.
func TestCodecPluginSharedMemory(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mode   string
		noShm  bool
		shared bool
	}{
		{"shared memory", "codec", false, true},
		{"host without", "codec", true, false},
		{"older plugin", "codec-stream", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := CodecConfig{Config: fastConfig(t, builds.Bin(t, pkgTest), "-mode", tc.mode), FrameTimeout: 2 * time.Second, NoSharedMemory: tc.noShm}
			c, err := NewCodecClient(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var delta codecs.BatchCodec
			for _, cd := range c.Codecs() {
				if cd.Descriptor().Name == "x-delta" {
					delta = cd.(codecs.BatchCodec)
				}
			}
			shmRounds(t, delta, 50, 6)
			st := c.Stats()
			t.Logf("%d batches, %d through shared memory, %d answers through it", st.Batches, st.Shared, st.SharedAnswers)
			if tc.shared && (st.Shared == 0 || st.SharedAnswers != st.Shared) {
				t.Errorf("%d of %d batches, %d answers through shared memory: want all", st.Shared, st.Batches, st.SharedAnswers)
			}
			if !tc.shared && (st.Shared != 0 || st.SharedAnswers != 0) {
				t.Errorf("%d batches, %d answers through shared memory: want none", st.Shared, st.SharedAnswers)
			}
		})
	}
}

// TestCodecPluginSharedMemoryOverflow: with a region too small for a
// batch (or for its answer), that batch (or answer) goes through the
// stream instead, and nothing is lost.
func TestCodecPluginSharedMemoryOverflow(t *testing.T) {
	t.Parallel()
	// Slots of 2 KiB: a 1 KiB request half holds two x-delta frames of
	// 160 samples (24 + 320 bytes each), not more.
	cfg := CodecConfig{Config: fastConfig(t, builds.Bin(t, pkgTest), "-mode", "codec"), FrameTimeout: 2 * time.Second, sharedSize: 4096}
	c, err := NewCodecClient(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var delta codecs.BatchCodec
	for _, cd := range c.Codecs() {
		if cd.Descriptor().Name == "x-delta" {
			delta = cd.(codecs.BatchCodec)
		}
	}
	for _, calls := range []int{1, 20} {
		t.Run(fmt.Sprint(calls), func(t *testing.T) {
			s0 := c.Stats()
			shmRounds(t, delta, calls, 4)
			s := c.Stats()
			shared, batches := s.Shared-s0.Shared, s.Batches-s0.Batches
			t.Logf("%d calls: %d of %d batches through shared memory, %d answers", calls, shared, batches, s.SharedAnswers-s0.SharedAnswers)
			if calls == 1 && shared == 0 {
				t.Error("one call's batches did not use shared memory")
			}
			// (A batch of only the 1-call run's CLOSE frames may fit.)
			if calls == 20 && batches-shared < 4 {
				t.Errorf("%d of %d batches through shared memory: the 4 of 20 calls do not fit a 1 KiB half", shared, batches)
			}
		})
	}
}
