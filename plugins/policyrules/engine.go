package policyrules

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/baton-voice/baton/p2p/handoff"
)

// Engine is a handoff.Policy backed by a rules file that it reloads when
// the file changes. A file that no longer parses is logged and ignored:
// the last good rules stay in force.
type Engine struct {
	path string
	now  func() time.Time
	log  *slog.Logger

	mu   sync.RWMutex
	set  *Set
	hash [sha256.Size]byte

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

var _ handoff.Policy = (*Engine)(nil)

// Open loads the rules at path; the file must be valid. now may be nil
// (time.Now).
func Open(path string, now func() time.Time, log *slog.Logger) (*Engine, error) {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{path: path, now: now, log: log, stop: make(chan struct{})}
	if _, err := e.Reload(); err != nil {
		return nil, err
	}
	return e, nil
}

// Reload reads the file again. It reports whether the rules changed; on
// error the previous rules stay.
func (e *Engine) Reload() (bool, error) {
	data, err := os.ReadFile(e.path)
	if err != nil {
		return false, fmt.Errorf("policyrules: %w", err)
	}
	h := sha256.Sum256(data)
	e.mu.RLock()
	same := e.set != nil && bytes.Equal(h[:], e.hash[:])
	e.mu.RUnlock()
	if same {
		return false, nil
	}
	s, err := Parse(data)
	if err != nil {
		return false, fmt.Errorf("%s: %w", e.path, err)
	}
	e.mu.Lock()
	e.set, e.hash = s, h
	e.mu.Unlock()
	return true, nil
}

// Watch reloads the file every interval until Close. Content hashing, not
// modification times, decides whether it changed, so an edit within the
// same second is still seen.
func (e *Engine) Watch(interval time.Duration) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-e.stop:
				return
			case <-t.C:
				changed, err := e.Reload()
				switch {
				case err != nil:
					e.log.Error("rules reload failed; keeping the previous rules", "path", e.path, "error", err)
				case changed:
					e.log.Info("rules reloaded", "path", e.path, "rules", e.Len())
				}
			}
		}
	}()
}

// Len is the number of rules in force.
func (e *Engine) Len() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.set.Len()
}

// Decide implements handoff.Policy.
func (e *Engine) Decide(_ context.Context, req handoff.Request) (handoff.Decision, error) {
	e.mu.RLock()
	s := e.set
	e.mu.RUnlock()
	return s.Decide(req, e.now()), nil
}

// Close stops Watch. It is idempotent.
func (e *Engine) Close() error {
	e.once.Do(func() { close(e.stop) })
	e.wg.Wait()
	return nil
}
