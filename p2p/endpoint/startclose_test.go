package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// TestStartCloseRace is TestHostCloseRacesStart for a standalone
// endpoint: Close runs at every moment of Start (before its listener,
// inside the login, after it). Start returns nil or ErrClosed; after both,
// no goroutine of the endpoint is left, its context is cancelled, its
// signaling port is closed and its access session is not logged in for
// good. Before Start set its listener, ctx and cancel under e.mu and
// checked closed again before starting its goroutines, the race detector
// reported Start's write of ctx/cancel against Close's read, and a Close
// during the login left the accept loop running on a listener nobody
// closed.
func TestStartCloseRace(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	const rounds = 40
	for i := range rounds {
		cfg := n.config("alice", fmt.Sprintf("start%d", i))
		cfg.SignalListen = "127.0.0.1:0"
		cfg.AddrWatch = time.Hour // the watcher is one more goroutine to account for
		ep, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(i) * 3 * time.Microsecond // 0 to 120 µs
		if i%2 == 1 {
			delay = time.Duration(i%20) * time.Millisecond // inside the login
		}
		var startErr, closeErr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); startErr = ep.Start(context.Background()) }()
		go func() {
			defer wg.Done()
			time.Sleep(delay)
			closeErr = ep.Close()
		}()
		wg.Wait()
		if startErr != nil && !errors.Is(startErr, ErrClosed) {
			t.Errorf("round %d: Start: %v, want nil or ErrClosed", i, startErr)
		}
		if closeErr != nil {
			t.Errorf("round %d: Close: %v", i, closeErr)
		}
		_ = ep.Close() // idempotent: a Close that ran before Start finished
		left := make(chan struct{})
		go func() { ep.wg.Wait(); close(left) }()
		select {
		case <-left:
		case <-time.After(wait):
			t.Fatalf("round %d (Start: %v): a goroutine of the endpoint outlived Close", i, startErr)
		}
		ep.mu.Lock()
		ctx, ln, c := ep.ctx, ep.ln, ep.client
		ep.mu.Unlock()
		if ctx != nil && ctx.Err() == nil {
			t.Errorf("round %d (Start: %v): the endpoint's context is not cancelled after Close", i, startErr)
		}
		if tl, ok := ln.(*net.TCPListener); ok {
			// A closed listener refuses a deadline; an open one takes it.
			if err := tl.SetDeadline(time.Now()); err == nil {
				_ = tl.Close()
				t.Errorf("round %d (Start: %v): the signaling listener %s is still open after Close", i, startErr, tl.Addr())
			}
		}
		if c != nil {
			select {
			case <-c.Done():
			case <-time.After(3 * time.Second):
				t.Errorf("round %d (Start: %v): the access session is still up after Close", i, startErr)
			}
		}
	}
}
