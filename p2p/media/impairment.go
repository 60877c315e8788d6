package media

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Impairment degrades a session's outgoing packets on purpose: a loss and
// jitter shim on loopback, so benchmarks and demos can measure behaviour on
// a bad network without leaving the machine. Nil (the default) sends
// packets as they are, on the allocation-free path.
type Impairment struct {
	// Loss is the probability (0..1) that a packet is dropped.
	Loss float64
	// Jitter delays each packet by a uniform random time in [0, Jitter),
	// which also reorders packets.
	Jitter time.Duration
	// Seed makes the pattern repeatable. It is mixed with the session's
	// SSRC, so an endpoint's successive sessions do not replay one pattern.
	Seed uint64
}

func (im *Impairment) validate() error {
	if im == nil {
		return nil
	}
	if im.Loss < 0 || im.Loss > 1 {
		return fmt.Errorf("media: impairment loss %v: want 0..1", im.Loss)
	}
	if im.Jitter < 0 || im.Jitter > time.Second {
		return fmt.Errorf("media: impairment jitter %v: want 0..1s", im.Jitter)
	}
	return nil
}

// impairer applies an Impairment. Delayed packets are copied and written
// from timers; close stops the timers and waits for any write in flight.
type impairer struct {
	cfg Impairment

	mu      sync.Mutex
	rng     *rand.Rand
	pending map[*time.Timer]struct{}
	closed  bool
	wg      sync.WaitGroup
	dropped uint64
}

func newImpairer(cfg *Impairment, ssrc uint32) *impairer {
	if cfg == nil {
		return nil
	}
	seed := cfg.Seed ^ uint64(ssrc)<<32 ^ uint64(ssrc)
	return &impairer{cfg: *cfg, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), pending: map[*time.Timer]struct{}{}}
}

func (im *impairer) send(conn *net.UDPConn, pkt []byte, to netip.AddrPort) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.closed {
		return
	}
	if im.cfg.Loss > 0 && im.rng.Float64() < im.cfg.Loss {
		im.dropped++
		return
	}
	if im.cfg.Jitter <= 0 {
		_, _ = conn.WriteToUDPAddrPort(pkt, to)
		return
	}
	delay := time.Duration(im.rng.Int64N(int64(im.cfg.Jitter)))
	b := append([]byte(nil), pkt...)
	im.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		defer im.wg.Done()
		im.mu.Lock()
		delete(im.pending, t)
		closed := im.closed
		im.mu.Unlock()
		if !closed {
			_, _ = conn.WriteToUDPAddrPort(b, to)
		}
	})
	im.pending[t] = struct{}{}
}

func (im *impairer) close() {
	if im == nil {
		return
	}
	im.mu.Lock()
	im.closed = true
	for t := range im.pending {
		if t.Stop() {
			im.wg.Done()
		}
		delete(im.pending, t)
	}
	im.mu.Unlock()
	im.wg.Wait()
}
