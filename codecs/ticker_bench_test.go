//go:build unix

package codecs

import (
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// processCPU is this process's user + system CPU time.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTicker is the shared tick driver's own cost: `calls` calls
// joined on one Ticker of 20 ms, each handing in one job per tick to a
// batch that does nothing but answer it, for 25 ticks per op. Metrics:
// cpu-us/call-tick is the process's CPU per call and tick (fan-out of
// the tick, hand-in, wake-up: what the Ticker adds to a batch codec's
// frame); p99-ms is when a call's Do returned after its tick's due time.
func BenchmarkTicker(b *testing.B) {
	for _, calls := range []int{100, 1000, 2000} {
		b.Run(fmt.Sprintf("calls=%d", calls), func(b *testing.B) {
			const ticks = 25
			t := NewTicker(20*time.Millisecond, 3*time.Millisecond, func(jobs []Job) {
				for i := range jobs {
					jobs[i].N = 1
				}
			})
			defer t.Close()
			var late []time.Duration
			var mu sync.Mutex
			cpu0 := processCPU(b)
			for b.Loop() {
				var wg sync.WaitGroup
				for range calls {
					wg.Go(func() {
						tc := t.Join()
						defer tc.Leave()
						jobs := make([]Job, 1)
						lat := make([]time.Duration, 0, ticks)
						for range ticks {
							due := <-tc.C
							jobs[0] = Job{Op: JobEncode}
							tc.Do(jobs)
							lat = append(lat, time.Since(due))
						}
						mu.Lock()
						late = append(late, lat...)
						mu.Unlock()
					})
				}
				wg.Wait()
			}
			cpu := processCPU(b) - cpu0
			b.ReportMetric(float64(cpu)/float64(b.N*calls*ticks)/float64(time.Microsecond), "cpu-us/call-tick")
			slices.Sort(late)
			b.ReportMetric(float64(late[len(late)*99/100])/float64(time.Millisecond), "p99-ms")
		})
	}
}
