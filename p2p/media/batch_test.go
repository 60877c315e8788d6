package media

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-voice/baton/codecs"
)

// batchCodec is statefulCodec as a codecs.BatchCodec: its Batch runs the
// jobs in process and records each batch, so a test sees which frames
// went through batches and how many calls met in one.
type batchCodec struct {
	statefulCodec
	direct atomic.Int64 // Encode/Decode calls on its states outside Batch

	mu      sync.Mutex
	ticker  *codecs.Ticker
	batches int
	jobs    int
	maxJobs int
	ops     map[codecs.JobOp]int
}

func newBatchCodec() *batchCodec {
	return &batchCodec{statefulCodec: statefulCodec{linearCodec: linearCodec{pt: testPT}}, ops: map[codecs.JobOp]int{}}
}

func (c *batchCodec) NewEncoder() (codecs.Encoder, error) {
	c.encs.Add(1)
	return &batchState{statefulState: statefulState{c: &c.statefulCodec}, b: c}, nil
}

func (c *batchCodec) NewDecoder() (codecs.Decoder, error) {
	c.decs.Add(1)
	return &batchState{statefulState: statefulState{c: &c.statefulCodec}, b: c}, nil
}

func (c *batchCodec) Batch(jobs []codecs.Job) {
	c.mu.Lock()
	c.batches++
	c.jobs += len(jobs)
	c.maxJobs = max(c.maxJobs, len(jobs))
	for _, j := range jobs {
		c.ops[j.Op]++
	}
	c.mu.Unlock()
	for i := range jobs {
		j := &jobs[i]
		switch j.Op {
		case codecs.JobEncode:
			j.N, j.Err = j.Enc.(*batchState).statefulState.Encode(j.Payload, j.PCM)
		case codecs.JobDecode:
			j.N, j.Err = j.Dec.(*batchState).statefulState.Decode(j.PCM, j.Payload)
		default:
			j.Err = codecs.ErrBadJob
		}
	}
}

func (c *batchCodec) Ticker(ptime time.Duration) *codecs.Ticker {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ticker == nil {
		c.ticker = codecs.NewTicker(ptime, 5*time.Millisecond, c.Batch)
	}
	return c.ticker
}

func (c *batchCodec) close() {
	c.mu.Lock()
	t := c.ticker
	c.mu.Unlock()
	if t != nil {
		_ = t.Close()
	}
}

// batchState counts the per-frame calls a session makes outside Batch.
type batchState struct {
	statefulState
	b *batchCodec
}

func (s *batchState) Encode(dst []byte, pcm []int16) (int, error) {
	s.b.direct.Add(1)
	return s.statefulState.Encode(dst, pcm)
}

func (s *batchState) Decode(dst []int16, p []byte) (int, error) {
	s.b.direct.Add(1)
	return s.statefulState.Decode(dst, p)
}

// TestSessionBatchCodec: sessions whose codec is a codecs.BatchCodec tick
// on its shared Ticker and hand each tick's encode and decode to Batch
// together; the frames of both calls meet in one batch, nothing is coded
// frame by frame, and the audio arrives exactly as with a per-frame codec.
func TestSessionBatchCodec(t *testing.T) {
	t.Parallel()
	codec := newBatchCodec()
	defer codec.close()
	recA, recB := &recordingSink{}, &recordingSink{}
	a := openSession(t, Config{Local: addr("127.0.0.1:0"), Codec: codec, Source: &patternSource{tag: 1}, Sink: recA})
	b := openSession(t, Config{Local: addr("127.0.0.1:0"), Codec: codec, Source: &patternSource{tag: 2}, Sink: recB})
	a.SetRemote(b.LocalAddr())
	b.SetRemote(a.LocalAddr())
	a.Start()
	b.Start()
	eventually(t, "40 frames played each way", func() bool { return recA.realCount() >= 40 && recB.realCount() >= 40 })
	if err := errors.Join(a.Close(), b.Close()); err != nil {
		t.Fatal(err)
	}
	for name, rec := range map[string]*recordingSink{"A": recA, "B": recB} {
		_, real, _ := rec.snapshot()
		want := 2
		if name == "B" {
			want = 1
		}
		for i, f := range real {
			if f.tag != want || (i > 0 && f.k != real[i-1].k+1) {
				t.Fatalf("%s played frame %d as %+v after %+v: want tag %d in order", name, i, f, real[max(i-1, 0)], want)
			}
		}
	}
	codec.mu.Lock()
	defer codec.mu.Unlock()
	if n := codec.direct.Load(); n != 0 {
		t.Errorf("%d frames coded one by one, want all in batches", n)
	}
	if codec.ops[codecs.JobEncode] < 80 || codec.ops[codecs.JobDecode] < 80 {
		t.Errorf("batches held %d encodes and %d decodes, want >= 80 each", codec.ops[codecs.JobEncode], codec.ops[codecs.JobDecode])
	}
	// Both calls' encode and decode in one batch: the shared tick.
	if codec.maxJobs != 4 {
		t.Errorf("largest batch %d jobs, want 4 (two calls' encode + decode)", codec.maxJobs)
	}
	if per := float64(codec.jobs) / float64(codec.batches); per < 3 {
		t.Errorf("%.1f jobs per batch over %d batches, want >= 3: the calls do not tick together", per, codec.batches)
	}
	if n := codec.closed.Load(); n != 4 {
		t.Errorf("%d of 4 codec states closed with the sessions", n)
	}
}
