package endpoint

import "sync"

// subscriberBuffer is how many events a subscriber may lag behind before it
// is dropped (its channel closed) instead of blocking the endpoint.
const subscriberBuffer = 1024

// bus fans events out to subscribers in publication order.
type bus struct {
	mu     sync.Mutex
	subs   map[chan Event]struct{}
	closed bool
}

func newBus() *bus { return &bus{subs: make(map[chan Event]struct{})} }

func (b *bus) publish(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	for ch := range b.subs {
		select {
		case ch <- ev:
		default:
			// A subscriber that cannot keep up loses its subscription; the
			// endpoint never blocks on an observer.
			delete(b.subs, ch)
			close(ch)
		}
	}
}

func (b *bus) subscribe() (<-chan Event, func()) {
	ch := make(chan Event, subscriberBuffer)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(ch)
		return ch, func() {}
	}
	b.subs[ch] = struct{}{}
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
	}
}

func (b *bus) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	for ch := range b.subs {
		delete(b.subs, ch)
		close(ch)
	}
}
