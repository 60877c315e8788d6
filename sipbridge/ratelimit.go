package sipbridge

import (
	"sync"
	"time"
)

// FailLimiter is a token bucket per source IP for failed authentications:
// each source may fail Burst times, then one more time per Every. The clock
// is injected so tests need no sleeping.
type FailLimiter struct {
	Burst int
	Every time.Duration
	Now   func() time.Time

	mu      sync.Mutex
	buckets map[string]bucket
	kept    int // buckets left after the last pruning
}

type bucket struct {
	tokens float64
	at     time.Time
}

func (l *FailLimiter) refill(ip string) bucket {
	now := l.Now()
	b, ok := l.buckets[ip]
	if !ok {
		return bucket{tokens: float64(l.Burst), at: now}
	}
	b.tokens += float64(now.Sub(b.at)) / float64(l.Every)
	if b.tokens > float64(l.Burst) {
		b.tokens = float64(l.Burst)
	}
	b.at = now
	return b
}

// Allowed reports whether a request from ip may attempt authentication.
func (l *FailLimiter) Allowed(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refill(ip).tokens >= 1
}

// Failed records a failed authentication from ip.
func (l *FailLimiter) Failed(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]bucket{}
	}
	b := l.refill(ip)
	if b.tokens >= 1 {
		b.tokens--
	}
	l.buckets[ip] = b
	if len(l.buckets) >= max(1024, 2*l.kept) {
		// A full bucket is the same as none: forget those, so a scan
		// from many addresses cannot grow the table without bound.
		for k := range l.buckets {
			if l.refill(k).tokens >= float64(l.Burst) {
				delete(l.buckets, k)
			}
		}
		l.kept = len(l.buckets)
	}
}
