package presence

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Memory is the embedded in-process Store. Its zero value is not usable;
// call NewMemory.
//
// Each watcher has its own unbounded queue and forwarding goroutine, so Put
// and Delete never wait for a watcher and no watcher misses a change; a
// watcher that stops reading without cancelling its ctx makes its queue grow
// until the store is closed, so watchers must either read or cancel.
type Memory struct {
	now func() time.Time

	mu sync.Mutex
	// users maps a user to its devices' entries, sorted by device. A slice,
	// not a map: most users have one or two devices, and a small Go map
	// costs about a kilobyte per user where a slice costs one entry.
	users    map[string][]Entry
	watchers map[*memWatcher]struct{}
	closed   bool

	wg sync.WaitGroup // forwarding goroutines
}

type memWatcher struct {
	queue []Entry       // guarded by Memory.mu
	wake  chan struct{} // capacity 1: "queue may be non-empty"
	stop  chan struct{} // closed by Memory.Close
	out   chan Entry
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store whose clock is time.Now.
func NewMemory() *Memory {
	return &Memory{
		now:      time.Now,
		users:    make(map[string][]Entry),
		watchers: make(map[*memWatcher]struct{}),
	}
}

// Put implements Store.
func (m *Memory) Put(ctx context.Context, e Entry) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("presence: put: %w", err)
	}
	// Strip the monotonic reading: a remote backend cannot keep it either,
	// and equal entries should compare equal whatever the backend.
	e.Since = e.Since.Round(0)
	if !e.Status.Reachable() {
		e.SignalAddr = netip.AddrPort{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("presence: put %s/%s: %w", e.User, e.Device, ErrClosed)
	}
	if e.Since.IsZero() {
		e.Since = m.now().Round(0)
	}
	m.setLocked(e)
	return nil
}

// Delete implements Store.
func (m *Memory) Delete(ctx context.Context, user, device string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("presence: delete %s/%s: %w", user, device, ErrClosed)
	}
	devs := m.users[user]
	i, ok := findDevice(devs, device)
	if !ok || devs[i].Status == StatusOffline {
		return nil
	}
	m.setLocked(Entry{User: user, Device: device, Status: StatusOffline, Since: m.now().Round(0)})
	return nil
}

// findDevice returns where device is, or would be inserted, in devs.
func findDevice(devs []Entry, device string) (int, bool) {
	return slices.BinarySearchFunc(devs, device, func(e Entry, d string) int { return strings.Compare(e.Device, d) })
}

// setLocked stores e and queues it for every watcher. Storing and queueing
// under the same lock is what gives every watcher the same order.
func (m *Memory) setLocked(e Entry) {
	devs := m.users[e.User]
	if i, ok := findDevice(devs, e.Device); ok {
		devs[i] = e
	} else {
		m.users[e.User] = slices.Insert(devs, i, e)
	}
	for w := range m.watchers {
		w.queue = append(w.queue, e)
		select {
		case w.wake <- struct{}{}:
		default: // already signalled
		}
	}
}

// Get implements Store.
func (m *Memory) Get(ctx context.Context, user, device string) (Entry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Entry{}, false, fmt.Errorf("presence: get %s/%s: %w", user, device, ErrClosed)
	}
	devs := m.users[user]
	if i, ok := findDevice(devs, device); ok {
		return devs[i], true, nil
	}
	return Entry{}, false, nil
}

// ListUser implements Store.
func (m *Memory) ListUser(ctx context.Context, user string) ([]Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("presence: list %s: %w", user, ErrClosed)
	}
	devs := m.users[user]
	if len(devs) == 0 {
		return nil, nil
	}
	return slices.Clone(devs), nil
}

// Watch implements Store.
func (m *Memory) Watch(ctx context.Context) (<-chan Entry, error) {
	w := &memWatcher{
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		out:  make(chan Entry),
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("presence: watch: %w", ErrClosed)
	}
	m.watchers[w] = struct{}{}
	m.wg.Add(1)
	go m.forward(ctx, w)
	return w.out, nil
}

// forward moves a watcher's queue to its channel, one entry at a time, until
// ctx ends or the store closes.
func (m *Memory) forward(ctx context.Context, w *memWatcher) {
	defer m.wg.Done()
	defer close(w.out)
	for {
		m.mu.Lock()
		batch := w.queue
		w.queue = nil
		m.mu.Unlock()
		for _, e := range batch {
			select {
			case w.out <- e:
			case <-ctx.Done():
				m.dropWatcher(w)
				return
			case <-w.stop:
				return
			}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-w.wake:
		case <-ctx.Done():
			m.dropWatcher(w)
			return
		case <-w.stop:
			return
		}
	}
}

func (m *Memory) dropWatcher(w *memWatcher) {
	m.mu.Lock()
	delete(m.watchers, w)
	w.queue = nil
	m.mu.Unlock()
}

// Close implements Store. It returns after every watcher's channel is
// closed.
func (m *Memory) Close() error {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		for w := range m.watchers {
			close(w.stop)
		}
		m.watchers = nil
		m.users = nil
	}
	m.mu.Unlock()
	m.wg.Wait()
	return nil
}
