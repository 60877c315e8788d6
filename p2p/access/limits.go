package access

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/baton-voice/baton/p2p/connlimit"
)

// Defaults for zero Limits fields (issue 11 §1: the probe's 120 failed
// logins in a row saw no slowdown, and 1,000 connections that never logged
// in, each holding a 256 KiB frame header, took the server from 59 to 184 MB).
const (
	DefaultSourceFailBurst     = 20
	DefaultSourceFailInterval  = 10 * time.Second
	DefaultUserFailBurst       = 5
	DefaultUserFailInterval    = 30 * time.Second
	DefaultMaxTracked          = 100_000
	DefaultMaxPendingPerSource = 32
	DefaultMaxPending          = 1024
	DefaultMaxLoginFrame       = 8 << 10
)

// minTracked keeps the limiter table big enough that the two entries one
// login touches never evict each other.
const minTracked = 16

// Limits bound what a client that has not logged in can cost the server.
// A source is an IPv4 address or an IPv6 /64 (one host usually holds a
// whole /64, so per-address keys would be free to multiply). Zero fields
// take the defaults above.
type Limits struct {
	// SourceFailBurst failed logins are allowed from one source before it
	// is refused with CodeRateLimited; after that one more every
	// SourceFailInterval (a token bucket: quiet time earns the burst back).
	SourceFailBurst    int
	SourceFailInterval time.Duration
	// UserFailBurst failed logins are allowed for one user name from one
	// source, then one every UserFailInterval. The key is user and source
	// together, so guessing alice's password from one address never locks
	// alice out at another; unknown and existing user names are keyed the
	// same way, so the limiter reveals no more than the login answer does.
	UserFailBurst    int
	UserFailInterval time.Duration
	// MaxTracked bounds the limiter's table (sources plus user-at-source
	// pairs) so the limiter itself cannot be used to exhaust memory; when it
	// is full the entry idle longest is dropped.
	MaxTracked int
	// Trusted source ranges are exempt from the failed-login limits and
	// from MaxPendingPerSource (a NAT in front of a whole office, a
	// gateway); MaxPending still counts them.
	Trusted []netip.Prefix
	// MaxPendingPerSource and MaxPending cap connections that have not
	// logged in yet, from one source and in total; logged-in connections do
	// not count. The excess is closed at accept, before any TLS work.
	MaxPendingPerSource int
	MaxPending          int
	// MaxLoginFrame bounds the payload of the first frame (the login
	// request, well under 4 KiB); a larger declared length is refused from
	// the header alone, before any of it is allocated.
	MaxLoginFrame int
}

func (l *Limits) setDefaults() error {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.SourceFailBurst, DefaultSourceFailBurst)
	defDur(&l.SourceFailInterval, DefaultSourceFailInterval)
	def(&l.UserFailBurst, DefaultUserFailBurst)
	defDur(&l.UserFailInterval, DefaultUserFailInterval)
	def(&l.MaxTracked, DefaultMaxTracked)
	def(&l.MaxPendingPerSource, DefaultMaxPendingPerSource)
	def(&l.MaxPending, DefaultMaxPending)
	def(&l.MaxLoginFrame, DefaultMaxLoginFrame)
	var errs []error
	for name, v := range map[string]int{
		"source fail burst": l.SourceFailBurst, "user fail burst": l.UserFailBurst,
		"max pending per source": l.MaxPendingPerSource, "max pending": l.MaxPending, "max login frame": l.MaxLoginFrame,
	} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("access: config: limits: %s %d must be positive", name, v))
		}
	}
	if l.SourceFailInterval < 0 || l.UserFailInterval < 0 {
		errs = append(errs, errors.New("access: config: limits: fail intervals must be positive"))
	}
	if l.MaxTracked < minTracked {
		errs = append(errs, fmt.Errorf("access: config: limits: max tracked %d: want at least %d", l.MaxTracked, minTracked))
	}
	for _, p := range l.Trusted {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("access: config: limits: invalid trusted range %v", p))
		}
	}
	return errors.Join(errs...)
}

// trusted reports whether src lies in a trusted range.
func (l *Limits) trusted(src netip.Addr) bool {
	for _, p := range l.Trusted {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// failLimiter keeps a token bucket of failed logins per source and per
// user at a source (rate.Limiter, one token per failure). A login is
// admitted before the password is checked only if both buckets hold a
// token beyond the attempts already in flight on them, so a refused attempt
// costs no argon2 work and concurrent attempts cannot overdraw a bucket;
// only a failure then takes its token. Entries form an LRU list bounded by
// Limits.MaxTracked; an entry back at its full burst with nothing in flight
// holds no information and is dropped.
type failLimiter struct {
	now                 func() time.Time
	srcEvery, userEvery rate.Limit
	srcBurst, userBurst int
	max                 int

	mu         sync.Mutex
	entries    map[limitKey]*limitEntry
	head, tail *limitEntry // head: touched most recently
}

type limitKey struct {
	src  netip.Addr
	user string // "" is the source's own bucket (valid user names are non-empty)
}

type limitEntry struct {
	key        limitKey
	lim        *rate.Limiter
	inflight   int // admitted attempts not yet done
	prev, next *limitEntry
}

// spare is how many failures e can still take now.
func (e *limitEntry) spare(now time.Time) float64 {
	return e.lim.TokensAt(now) - float64(e.inflight)
}

// wait is how long until e can take one more failure (ignoring attempts in
// flight that may still succeed: an upper bound).
func (e *limitEntry) wait(now time.Time) time.Duration {
	need := 1 - e.spare(now)
	return time.Duration(need / float64(e.lim.Limit()) * float64(time.Second))
}

func (e *limitEntry) idle(now time.Time) bool {
	return e.inflight == 0 && e.lim.TokensAt(now) >= float64(e.lim.Burst())
}

func newFailLimiter(l Limits, now func() time.Time) *failLimiter {
	return &failLimiter{
		now:       now,
		srcEvery:  rate.Every(l.SourceFailInterval),
		userEvery: rate.Every(l.UserFailInterval),
		srcBurst:  l.SourceFailBurst,
		userBurst: l.UserFailBurst,
		max:       l.MaxTracked,
		entries:   make(map[limitKey]*limitEntry),
	}
}

// loginTicket is one admitted login attempt; done ends it. The zero
// ticket (a trusted source) holds nothing.
type loginTicket struct {
	l         *failLimiter
	src, user *limitEntry
}

// admit admits one login attempt for user at src, or returns how long
// until it could be admitted.
func (l *failLimiter) admit(src netip.Addr, user string) (loginTicket, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(now)
	se := l.touch(limitKey{src: src}, l.srcEvery, l.srcBurst)
	if se.spare(now) < 1 {
		return loginTicket{}, max(se.wait(now), time.Millisecond)
	}
	ue := l.touch(limitKey{src: src, user: user}, l.userEvery, l.userBurst)
	if ue.spare(now) < 1 {
		w := ue.wait(now)
		l.dropIfIdle(ue, now) // only when the wait comes from in-flight attempts
		l.dropIfIdle(se, now)
		return loginTicket{}, max(w, time.Millisecond)
	}
	se.inflight++
	ue.inflight++
	return loginTicket{l: l, src: se, user: ue}, 0
}

// done ends the attempt. A failed one (a wrong guess) takes a token from
// both buckets; a successful one, or one the server failed, takes nothing.
// Entries left idle are dropped, so successful logins leave no trace.
func (t loginTicket) done(failed bool) {
	if t.l == nil {
		return
	}
	now := t.l.now()
	t.l.mu.Lock()
	defer t.l.mu.Unlock()
	for _, e := range [2]*limitEntry{t.user, t.src} {
		e.inflight--
		if failed {
			// admit kept a token free for this attempt, and tokens only
			// grow with time; ReserveN still charges if the clock stepped
			// back (the bucket goes negative: a longer wait).
			e.lim.ReserveN(now, 1)
		}
		t.l.dropIfIdle(e, now)
	}
}

// touch returns the entry for k, created (evicting the least recently
// used entry if the table is full) if absent, and marks it most recent.
func (l *failLimiter) touch(k limitKey, every rate.Limit, burst int) *limitEntry {
	if e := l.entries[k]; e != nil {
		l.unlink(e)
		l.pushFront(e)
		return e
	}
	if len(l.entries) >= l.max {
		l.remove(l.tail)
	}
	e := &limitEntry{key: k, lim: rate.NewLimiter(every, burst)}
	l.entries[k] = e
	l.pushFront(e)
	return e
}

// prune drops up to two of the least recently used entries that have
// refilled, so the table shrinks back after an attack without a sweeper.
func (l *failLimiter) prune(now time.Time) {
	for range 2 {
		e := l.tail
		if e == nil || !e.idle(now) {
			return
		}
		l.remove(e)
	}
}

// dropIfIdle removes e if it is still in the table and idle: it then says
// nothing a fresh entry would not.
func (l *failLimiter) dropIfIdle(e *limitEntry, now time.Time) {
	if l.entries[e.key] == e && e.idle(now) {
		l.remove(e)
	}
}

func (l *failLimiter) remove(e *limitEntry) {
	l.unlink(e)
	delete(l.entries, e.key)
}

func (l *failLimiter) pushFront(e *limitEntry) {
	e.prev, e.next = nil, l.head
	if l.head != nil {
		l.head.prev = e
	}
	l.head = e
	if l.tail == nil {
		l.tail = e
	}
}

func (l *failLimiter) unlink(e *limitEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

// size is the number of entries in the table.
func (l *failLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// refusedReasons are the values of the refused_conns_total "reason"
// label, indexed by connlimit.Reason - 1.
var refusedReasons = [2]connlimit.Reason{connlimit.ReasonPerSource, connlimit.ReasonTotal}

// logEvery lets one log line through per interval; the caller reports how
// many it held back, so an attack cannot flood the log.
type logEvery struct {
	every      time.Duration
	next       atomic.Int64 // unix nanoseconds
	suppressed atomic.Uint64
}

// allow reports whether to log now and how many events were suppressed
// since the last line that was let through.
func (e *logEvery) allow() (bool, uint64) {
	now := time.Now().UnixNano()
	next := e.next.Load()
	if now < next || !e.next.CompareAndSwap(next, now+int64(e.every)) {
		e.suppressed.Add(1)
		return false, 0
	}
	return true, e.suppressed.Swap(0)
}
