package plugins

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/baton-voice/baton/codecs"
)

// TestCodecPluginBatchTicker runs 64 calls of the stateful x-delta codec
// on the client's shared Ticker, the way media sessions do: each tick a
// call hands in its encode and the decode of its previous frame together.
// Every call's audio comes back exact (its state is its own, in order),
// and a tick's frames of all calls go out in about one batch.
func TestCodecPluginBatchTicker(t *testing.T) {
	t.Parallel()
	c, byName := loadTestCodecs(t)
	delta := byName["x-delta"].(codecs.BatchCodec)
	const calls, ticks = 64, 25
	tk := delta.Ticker(20 * time.Millisecond)
	if tk != byName["PCMU"].(codecs.BatchCodec).Ticker(20*time.Millisecond) {
		t.Error("the plugin's codecs do not share their ticker")
	}
	s0 := c.Stats()
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for call := range calls {
		wg.Go(func() {
			enc, _ := codecs.NewEncoder(delta)
			dec, _ := codecs.NewDecoder(delta)
			defer enc.Close()
			defer dec.Close()
			tc := tk.Join()
			defer tc.Leave()
			payload, prev, out := make([]byte, 400), make([]byte, 400), make([]int16, 200)
			var prevN int
			for k := range ticks {
				<-tc.C
				jobs := []codecs.Job{{Op: codecs.JobEncode, Enc: enc, PCM: toneFrame(160*k + 37*call), Payload: payload}}
				if k > 0 {
					jobs = append(jobs, codecs.Job{Op: codecs.JobDecode, Dec: dec, PCM: out, Payload: prev[:prevN]})
				}
				tc.Do(jobs)
				for _, j := range jobs {
					if j.Err != nil {
						errs <- fmt.Errorf("call %d tick %d: %v: %w", call, k, j.Op, j.Err)
						return
					}
				}
				if k > 0 && !equalPCM(out[:jobs[1].N], toneFrame(160*(k-1)+37*call)) {
					errs <- fmt.Errorf("call %d tick %d: audio came back altered", call, k)
					return
				}
				prevN = copy(prev, payload[:jobs[0].N])
			}
			jobs := []codecs.Job{{Op: codecs.JobConceal, Dec: dec, PCM: out[:160]}}
			tc.Do(jobs)
			if jobs[0].Err != nil || !equalPCM(out[:jobs[0].N], toneFrame(160*(ticks-2)+37*call)) {
				errs <- fmt.Errorf("call %d: conceal in a batch: %v", call, jobs[0].Err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := c.Stats()
	frames, batches := st.Frames-s0.Frames, st.Batches-s0.Batches
	t.Logf("%d frames in %d batches (largest %d)", frames, batches, st.MaxBatch)
	if want := uint64(calls * (2*ticks - 1)); frames < want {
		t.Errorf("%d frames sent, want >= %d", frames, want)
	}
	// One batch per tick when every call is in time; allow stragglers.
	if batches > 3*ticks {
		t.Errorf("%d batches for %d ticks: the calls' frames do not share a tick's batch", batches, ticks)
	}
}

// TestCodecPluginBatchBadJobs: a job the plugin client cannot do fails by
// itself, naming why (ErrBadJob), and the batch's other jobs are done.
func TestCodecPluginBatchBadJobs(t *testing.T) {
	t.Parallel()
	_, byName := loadTestCodecs(t)
	pcmu := byName["PCMU"].(codecs.BatchCodec)
	enc, _ := codecs.NewEncoder(pcmu)
	defer enc.Close()
	local, _ := codecs.NewEncoder(codecs.PCMU())
	closed, _ := codecs.NewDecoder(pcmu)
	_ = closed.Close()
	payload, twice, other := make([]byte, 160), make([]byte, 160), make([]byte, 160)
	jobs := []codecs.Job{
		{Op: codecs.JobEncode, Enc: enc, PCM: toneFrame(0), Payload: payload},
		{Op: codecs.JobEncode, Enc: enc, PCM: toneFrame(0), Payload: twice}, // same state twice
		{Op: codecs.JobEncode, Enc: local, PCM: toneFrame(0), Payload: other},
		{Op: codecs.JobDecode, Dec: closed, PCM: make([]int16, 160), Payload: payload},
		{Op: codecs.JobUnknown},
		{Op: codecs.JobEncode, Enc: enc, PCM: make([]int16, 10000), Payload: other},
	}
	pcmu.Batch(jobs)
	want, _ := codecs.PCMU().Encode(make([]byte, 160), toneFrame(0))
	if jobs[0].Err != nil || jobs[0].N != want {
		t.Errorf("good job: n %d err %v, want %d bytes", jobs[0].N, jobs[0].Err, want)
	}
	for i, is := range []error{nil, codecs.ErrBadJob, codecs.ErrBadJob, codecs.ErrClosed, codecs.ErrBadJob, codecs.ErrBadJob} {
		if is == nil {
			continue
		}
		if !errors.Is(jobs[i].Err, is) {
			t.Errorf("job %d (%v): err %v, want %v", i, jobs[i].Op, jobs[i].Err, is)
		}
	}
}

// TestCodecPluginBatchKilled kills the plugin: a batch fails at once with
// ErrUnavailable for every job (it never hangs the tick), and after the
// restart the same states work in batches again.
func TestCodecPluginBatchKilled(t *testing.T) {
	t.Parallel()
	c, byName := loadTestCodecs(t)
	delta := byName["x-delta"].(codecs.BatchCodec)
	enc, _ := codecs.NewEncoder(delta)
	dec, _ := codecs.NewDecoder(delta)
	defer enc.Close()
	defer dec.Close()
	payload, out := make([]byte, 400), make([]int16, 200)
	frame := func() error {
		jobs := []codecs.Job{{Op: codecs.JobEncode, Enc: enc, PCM: toneFrame(0), Payload: payload}}
		delta.Batch(jobs)
		if jobs[0].Err != nil {
			return jobs[0].Err
		}
		jobs = []codecs.Job{{Op: codecs.JobDecode, Dec: dec, PCM: out, Payload: payload[:jobs[0].N]}}
		delta.Batch(jobs)
		if jobs[0].Err == nil && !equalPCM(out[:jobs[0].N], toneFrame(0)) {
			return errors.New("audio altered")
		}
		return jobs[0].Err
	}
	if err := frame(); err != nil {
		t.Fatal(err)
	}
	pid := c.Supervisor().PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	sawFail := false
	eventually(t, "batches work again after the restart", func() bool {
		t0 := time.Now()
		err := frame()
		if err != nil {
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("batch while the plugin is down: %v, want ErrUnavailable", err)
			}
			if d := time.Since(t0); d > wait/2 {
				t.Fatalf("a failed batch took %v", d)
			}
			sawFail = true
			return false
		}
		return sawFail && c.Supervisor().PID() != pid
	})
}
