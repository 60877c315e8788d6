package codecs

import (
	"sync"
	"time"
)

// Ticker is the shared tick driver of a BatchCodec's calls: one clock for
// all of them, and a per-tick collector of their frames. Every period it
// sends each joined call the tick's due time; each call does its tick's
// own work, hands its frames to Do, and waits. When every call ticked has
// handed in its frames (or Gather after the tick, for the ones that are
// late), the Ticker runs them all as one batch and wakes the calls with
// their results: one exchange with the codec per tick, whatever the
// number of calls, and no per-frame hand-off.
//
// Ticks fall on a fixed grid (Align), so a call whose timeline starts on
// it is never a fraction of a period late by design. One goroutine owns
// the clock; Close stops it and returns when it has exited.
type Ticker struct {
	period, gather time.Duration
	run            func([]Job)
	epoch          time.Time

	mu     sync.Mutex
	calls  map[*TickerCall]struct{}
	round  []*TickerCall // handed in, waiting for the next run
	jobs   []Job         // their jobs, concatenated
	spare  []Job
	send   []*TickerCall // the loop's: calls to send this tick's time
	expect int           // calls sent this tick's time that have not handed in yet
	late   bool          // Gather has passed since the tick: run what comes at once
	closed bool

	wake chan struct{} // capacity 1
	stop chan struct{}
	done chan struct{}
}

// TickerCall is one call's membership of a Ticker. Its owner (the call's
// media goroutine) receives ticks from C and calls Do once per tick.
type TickerCall struct {
	t *Ticker
	// C receives each tick's due time. It holds one: a call that is still
	// busy with the previous tick misses the value, and its timeline
	// catches up from the next (the due time says which ticks are due).
	C      <-chan time.Time
	c      chan time.Time
	ticked bool // sent a tick it has not handed in for; guarded by t.mu
	off, n int
	out    []Job
	done   chan struct{}
}

// NewTicker starts a tick driver with the given period that runs each
// tick's jobs with run (a BatchCodec's Batch). gather bounds how long a
// tick waits for its calls' frames before running those that came (a
// call late for its tick is run in a batch of its own right away). A
// period under a millisecond is taken as one millisecond.
func NewTicker(period, gather time.Duration, run func([]Job)) *Ticker {
	period = max(period, time.Millisecond)
	t := &Ticker{
		period: period,
		gather: gather,
		run:    run,
		calls:  make(map[*TickerCall]struct{}),
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	tk := time.NewTicker(period)
	t.epoch = time.Now()
	go t.loop(tk)
	return t
}

// Period returns the tick period.
func (t *Ticker) Period() time.Duration { return t.period }

// Align returns the latest tick time at or before now: a call that starts
// its timeline there runs its ticks on the Ticker's own.
func (t *Ticker) Align(now time.Time) time.Time {
	k := now.Sub(t.epoch) / t.period
	if now.Before(t.epoch) {
		k--
	}
	return t.epoch.Add(k * t.period)
}

// Join adds a call. It must Leave when it ends.
func (t *Ticker) Join() *TickerCall {
	ch := make(chan time.Time, 1)
	c := &TickerCall{t: t, C: ch, c: ch, done: make(chan struct{}, 1)}
	t.mu.Lock()
	if !t.closed {
		t.calls[c] = struct{}{}
	}
	t.mu.Unlock()
	return c
}

// Leave removes the call; it gets no more ticks. It is idempotent.
func (c *TickerCall) Leave() {
	t := c.t
	t.mu.Lock()
	delete(t.calls, c)
	kick := c.handIn()
	t.mu.Unlock()
	if kick {
		t.kick()
	}
}

// handIn records that the call is done with its tick. Called with t.mu
// held; it reports whether the round may be complete.
func (c *TickerCall) handIn() bool {
	t := c.t
	if c.ticked {
		c.ticked = false
		t.expect--
	}
	return t.expect == 0 || t.late
}

// Do hands in the call's jobs for its tick and returns when they are
// done, with the results written into jobs. A tick with nothing to code
// calls Do with no jobs, so the Ticker need not wait for it. After Close
// the jobs run at once, by themselves.
func (c *TickerCall) Do(jobs []Job) {
	t := c.t
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		if len(jobs) > 0 {
			t.run(jobs)
		}
		return
	}
	kick := c.handIn()
	if len(jobs) == 0 {
		t.mu.Unlock()
		if kick {
			t.kick()
		}
		return
	}
	c.off, c.n, c.out = len(t.jobs), len(jobs), jobs
	t.jobs = append(t.jobs, jobs...)
	t.round = append(t.round, c)
	t.mu.Unlock()
	if kick {
		t.kick()
	}
	<-c.done
}

func (t *Ticker) kick() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Close stops the clock, runs the jobs handed in, and returns when the
// driver has exited. Calls still joined get no more ticks; their Do runs
// the jobs by themselves. It is idempotent.
func (t *Ticker) Close() error {
	t.mu.Lock()
	already := t.closed
	t.closed = true
	t.mu.Unlock()
	if !already {
		close(t.stop)
	}
	<-t.done
	return nil
}

func (t *Ticker) loop(tk *time.Ticker) {
	defer close(t.done)
	defer tk.Stop()
	gather := time.NewTimer(time.Hour)
	gather.Stop()
	defer gather.Stop()
	var tick int64
	for {
		select {
		case <-t.stop:
			t.flush(true)
			return
		case at := <-tk.C:
			// A round complete but not run yet (its last hand-in's wake
			// and this tick were ready together, and select took the
			// tick) runs first: counted in below, its calls, blocked in
			// Do for it, would be waited for, and it would wait until
			// Gather (for ever with a long one). A round a late call has
			// not handed in for yet runs too: a round never waits across
			// ticks, and the late call's jobs go in the next one.
			t.flush(true)
			// The grid time of this tick, not the channel's: calls compute
			// which of their ticks are due from it.
			k := (at.Sub(t.epoch) + t.period/2) / t.period
			if int64(k) <= tick {
				k = time.Duration(tick + 1)
			}
			tick = int64(k)
			due := t.epoch.Add(k * t.period)
			// The calls are counted in under the lock and sent their tick
			// after it: each send wakes a call that goes straight for the
			// lock in Do, and a thousand of them parking on it while the
			// sends go on cost more than the sends.
			t.mu.Lock()
			t.late = false
			send := t.send[:0]
			for c := range t.calls {
				if c.ticked {
					continue // still on its last tick: that one counts
				}
				// Not ticked: it has handed in every tick it took, so its
				// channel (only this loop sends on it) is empty.
				c.ticked = true
				t.expect++
				send = append(send, c)
			}
			t.mu.Unlock()
			for _, c := range send {
				select {
				case c.c <- due:
				default: // cannot happen (above); the gather ends the round
				}
			}
			clear(send)
			t.send = send[:0]
			gather.Reset(t.gather)
		case <-gather.C:
			t.mu.Lock()
			t.late = true
			t.mu.Unlock()
		case <-t.wake:
		}
		t.flush(false)
	}
}

// flush runs the round when every call ticked has handed in, or Gather
// has passed, or force.
func (t *Ticker) flush(force bool) {
	t.mu.Lock()
	if len(t.round) == 0 || (!force && t.expect > 0 && !t.late) {
		t.mu.Unlock()
		return
	}
	round, jobs := t.round, t.jobs
	t.round, t.jobs = nil, t.spare[:0]
	t.mu.Unlock()
	t.run(jobs)
	for _, c := range round {
		copy(c.out, jobs[c.off:c.off+c.n])
		c.done <- struct{}{}
	}
	clear(jobs) // drop references to the calls' buffers
	t.mu.Lock()
	t.spare = jobs[:0]
	if t.round == nil {
		clear(round)
		t.round = round[:0]
	}
	t.mu.Unlock()
}
