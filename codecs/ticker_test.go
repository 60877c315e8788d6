package codecs

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// TestRunJobs: the unbatched fallback does each job with its own state and
// fails a malformed one by itself.
func TestRunJobs(t *testing.T) {
	t.Parallel()
	enc, _ := NewEncoder(PCMU())
	dec, _ := NewDecoder(PCMU())
	pcm := []int16{0, 1000, -1000, 8000}
	payload, out := make([]byte, 4), make([]int16, 4)
	jobs := []Job{
		{Op: JobEncode, Enc: enc, PCM: pcm, Payload: payload},
		{Op: JobConceal, Dec: dec, PCM: out},
		{Op: JobDecode, PCM: out},
		{},
	}
	RunJobs(jobs)
	if jobs[0].Err != nil || jobs[0].N != 4 {
		t.Errorf("encode: %d, %v", jobs[0].N, jobs[0].Err)
	}
	for i := 1; i < len(jobs); i++ {
		if !errors.Is(jobs[i].Err, ErrBadJob) {
			t.Errorf("job %d (%v): %v, want ErrBadJob", i, jobs[i].Op, jobs[i].Err)
		}
	}
	jobs = []Job{{Op: JobDecode, Dec: dec, PCM: out, Payload: payload}}
	RunJobs(jobs)
	want, _ := PCMU().Decode(make([]int16, 4), payload)
	if jobs[0].Err != nil || jobs[0].N != want {
		t.Errorf("decode: %d, %v", jobs[0].N, jobs[0].Err)
	}
}

// recordRuns is a Ticker's run func that records each batch's size.
type recordRuns struct {
	mu    sync.Mutex
	sizes []int
}

func (r *recordRuns) run(jobs []Job) {
	r.mu.Lock()
	r.sizes = append(r.sizes, len(jobs))
	r.mu.Unlock()
	RunJobs(jobs)
}

// TestTickerOneBatchPerTick: the calls joined get every tick's grid time
// and their jobs of a tick run as one batch; a call that leaves, or has
// nothing to code, does not hold the others back (the gather time here is
// an hour, so waiting for it would time the test out).
func TestTickerOneBatchPerTick(t *testing.T) {
	t.Parallel()
	const period, calls, ticks = 10 * time.Millisecond, 8, 10
	var r recordRuns
	tk := NewTicker(period, time.Hour, r.run)
	defer tk.Close()
	idle := tk.Join() // joined, never ticks: leaves at once
	idle.Leave()
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[time.Time]int{}
	for i := range calls {
		tc := tk.Join()
		wg.Go(func() {
			defer tc.Leave()
			enc, _ := NewEncoder(PCMU())
			pcm, payload := make([]int16, 160), make([]byte, 160)
			for range ticks {
				at := <-tc.C
				if at != tk.Align(at) {
					t.Errorf("tick at %v is off the grid (%v)", at, tk.Align(at))
				}
				mu.Lock()
				seen[at]++
				mu.Unlock()
				if i == 0 {
					tc.Do(nil) // nothing to code this tick
					continue
				}
				jobs := []Job{{Op: JobEncode, Enc: enc, PCM: pcm, Payload: payload}}
				tc.Do(jobs)
				if jobs[0].Err != nil || jobs[0].N != 160 {
					t.Errorf("job: %d, %v", jobs[0].N, jobs[0].Err)
				}
			}
		})
	}
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	full := 0
	for _, n := range r.sizes {
		if n == calls-1 {
			full++
		}
	}
	// A tick whose value a busy call missed is split; most are whole.
	if full < ticks/2 {
		t.Errorf("batch sizes %v: want most ticks as one batch of %d", r.sizes, calls-1)
	}
	if len(seen) < ticks {
		t.Errorf("%d distinct tick times, want >= %d", len(seen), ticks)
	}
}

// TestTickerClose: a Do with no call due runs at once; Close returns and
// is idempotent; Do after it runs the jobs by themselves.
func TestTickerClose(t *testing.T) {
	t.Parallel()
	var r recordRuns
	tk := NewTicker(time.Hour, time.Hour, r.run)
	_ = tk.Join() // joined, but no tick is due: nobody is waited for
	tc := tk.Join()
	done := make(chan Job)
	enc, _ := NewEncoder(PCMU())
	go func() {
		jobs := []Job{{Op: JobEncode, Enc: enc, PCM: make([]int16, 8), Payload: make([]byte, 8)}}
		tc.Do(jobs)
		done <- jobs[0]
	}()
	if j := <-done; j.Err != nil || j.N != 8 {
		t.Errorf("job with no call due: %d, %v", j.N, j.Err)
	}
	if err := tk.Close(); err != nil {
		t.Fatal(err)
	}
	_ = tk.Close()
	jobs := []Job{{Op: JobEncode, Enc: enc, PCM: make([]int16, 8), Payload: make([]byte, 8)}}
	tc.Do(jobs)
	if jobs[0].N != 8 {
		t.Errorf("Do after Close: %d, %v", jobs[0].N, jobs[0].Err)
	}
}
