package plugins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/baton-voice/baton/plugins/internal/pb/pluginv1"
)

// Supervisor runs one plugin process and keeps it running: it checks the
// plugin's health with a deadline, and when the process dies, hangs or
// stops answering health checks it kills it and starts a new one with
// exponential backoff. One goroutine (run) owns starting, checking and
// killing; callers only read the current instance.
type Supervisor struct {
	cfg  Config
	kind Kind
	log  *slog.Logger

	// onDown is called (from run) after an instance is gone, with its
	// generation; kind clients close what depended on it (watch streams).
	onDown func(gen uint64)

	mu      sync.Mutex
	cur     *instance // nil while down
	lastErr error     // why the plugin is down
	closed  bool
	gen     uint64
	stats   Stats

	kick chan struct{} // capacity 1: "check now"
	done chan struct{}
	wg   sync.WaitGroup
}

// Stats counts what the supervisor did, for logs, tests and /metrics.
type Stats struct {
	Starts        int // successful starts, the first included
	FailedStarts  int
	Restarts      int // successful starts after the first
	HealthFails   int
	LastStartTime time.Duration // how long the last successful start took
}

// Supervise starts the plugin described by cfg, which must serve kind
// (KindUnknown: any kind), and supervises it until Close. It fails if the
// first start fails: a misconfigured plugin is an error at load time, not
// a restart loop.
func Supervise(ctx context.Context, cfg Config, kind Kind) (*Supervisor, error) {
	return supervise(ctx, cfg, kind, nil)
}

func supervise(ctx context.Context, cfg Config, kind Kind, onDown func(uint64)) (*Supervisor, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Supervisor{cfg: cfg, kind: kind, log: cfg.Logger, onDown: onDown, kick: make(chan struct{}, 1), done: make(chan struct{})}
	t0 := time.Now()
	inst, err := launch(ctx, cfg, kind)
	if err != nil {
		return nil, err
	}
	s.gen++
	inst.gen = s.gen
	s.cur = inst
	s.stats.Starts = 1
	s.stats.LastStartTime = time.Since(t0)
	s.log.Info("plugin started", "kind", inst.desc.Kind, "protocol_version", inst.desc.ProtocolVersion,
		"plugin_version", inst.desc.Version, "pid", inst.pid(), "start_time", s.stats.LastStartTime)
	s.wg.Add(1)
	go s.run()
	return s, nil
}

// Description returns what the running plugin said about itself at its
// last start.
func (s *Supervisor) Description() Description {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return Description{Kind: s.kind}
	}
	return s.cur.desc
}

// Stats returns a copy of the supervisor's counters.
func (s *Supervisor) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// PID returns the running plugin's process id, or 0 while it is down.
func (s *Supervisor) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return 0
	}
	return s.cur.pid()
}

// current returns the running instance, or an error wrapping ErrUnavailable
// (or ErrClosed).
func (s *Supervisor) current() (*instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("plugins: %s: %w", s.cfg.Name, ErrClosed)
	}
	if s.cur == nil {
		if s.lastErr != nil {
			return nil, fmt.Errorf("plugins: %s: %w: %v", s.cfg.Name, ErrUnavailable, s.lastErr)
		}
		return nil, fmt.Errorf("plugins: %s: %w", s.cfg.Name, ErrUnavailable)
	}
	return s.cur, nil
}

// Check asks run to check the plugin now (a caller saw an RPC fail).
func (s *Supervisor) Check() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Close kills the plugin (gracefully first) and returns once it is gone. It
// is idempotent.
func (s *Supervisor) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Supervisor) run() {
	defer s.wg.Done()
	tick := time.NewTicker(s.cfg.HealthInterval)
	defer tick.Stop()
	var (
		failures int
		backoff  = s.cfg.RestartMin
		retry    <-chan time.Time // set while down
		exited   = s.cur.exited
	)
	down := func(why error, graceful bool) {
		s.mu.Lock()
		inst := s.cur
		s.cur, s.lastErr = nil, why
		s.mu.Unlock()
		if inst == nil {
			return
		}
		inst.kill(graceful)
		uptime := time.Since(inst.started)
		// A plugin that stayed up a while restarts quickly; one that keeps
		// dying right after starting backs off.
		if uptime >= s.cfg.RestartMax {
			backoff = s.cfg.RestartMin
		}
		s.log.Warn("plugin down, restarting", "error", why, "uptime", uptime, "restart_in", backoff)
		if s.onDown != nil {
			s.onDown(inst.gen)
		}
		retry = time.After(backoff)
		exited = nil
		failures = 0
	}
	for {
		select {
		case <-s.done:
			s.mu.Lock()
			inst := s.cur
			s.cur = nil
			s.mu.Unlock()
			if inst != nil {
				inst.kill(true)
				if s.onDown != nil {
					s.onDown(inst.gen)
				}
			}
			return
		case <-exited:
			down(errors.New("plugin process exited"), false)
		case <-retry:
			retry = nil
			t0 := time.Now()
			inst, err := launch(context.Background(), s.cfg, s.kind)
			if err != nil {
				s.mu.Lock()
				s.lastErr = err
				s.stats.FailedStarts++
				s.mu.Unlock()
				backoff = min(2*backoff, s.cfg.RestartMax)
				s.log.Error("plugin restart failed", "error", err, "retry_in", backoff)
				retry = time.After(backoff)
				continue
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				inst.kill(true)
				continue // s.done is closed: the next select returns
			}
			s.gen++
			inst.gen = s.gen
			s.cur, s.lastErr = inst, nil
			s.stats.Starts++
			s.stats.Restarts++
			s.stats.LastStartTime = time.Since(t0)
			s.mu.Unlock()
			backoff = min(2*backoff, s.cfg.RestartMax)
			exited = inst.exited
			s.log.Info("plugin restarted", "pid", inst.pid(), "start_time", time.Since(t0))
		case <-tick.C:
			if err := s.health(); err != nil {
				failures++
				s.mu.Lock()
				s.stats.HealthFails++
				s.mu.Unlock()
				s.log.Warn("plugin health check failed", "error", err, "failures", failures, "limit", s.cfg.HealthFailures)
				if failures >= s.cfg.HealthFailures {
					down(err, false)
				}
			} else {
				failures = 0
			}
		case <-s.kick:
			// An RPC failed: if the process is gone, restart now rather
			// than at the next tick; if it merely failed one call, count it
			// like a failed health check.
			s.mu.Lock()
			inst := s.cur
			s.mu.Unlock()
			if inst == nil {
				continue
			}
			select {
			case <-inst.exited:
				down(errors.New("plugin process exited"), false)
				continue
			case <-time.After(2 * exitPoll):
			}
			if inst.client.Exited() {
				down(errors.New("plugin process exited"), false)
				continue
			}
			if err := s.health(); err != nil {
				failures++
				if failures >= s.cfg.HealthFailures {
					down(err, false)
				}
			}
		}
	}
}

// health runs one health check with its own deadline.
func (s *Supervisor) health() error {
	s.mu.Lock()
	inst := s.cur
	s.mu.Unlock()
	if inst == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HealthTimeout)
	defer cancel()
	r, err := inst.info.Health(ctx, &pluginv1.HealthRequest{})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnhealthy, err)
	}
	if !r.GetOk() {
		return fmt.Errorf("%w: %s", ErrUnhealthy, r.GetDetail())
	}
	return nil
}
