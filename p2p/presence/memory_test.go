package presence_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/presence"
	"github.com/baton-voice/baton/p2p/presence/storetest"
)

func TestMemoryConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) presence.Store { return presence.NewMemory() })
}

// TestMemoryCloseLeavesNoGoroutines is not parallel: it counts goroutines.
func TestMemoryCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	m := presence.NewMemory()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var chans []<-chan presence.Entry
	for range 10 {
		ch, err := m.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, ch)
	}
	// Some watchers have undelivered entries queued when the store closes.
	for i := range 5 {
		if err := m.Put(ctx, presence.Entry{User: "alice", Device: "laptop", Status: presence.StatusOnline, Since: time.Unix(int64(i), 0)}); err != nil {
			t.Fatal(err)
		}
	}
	<-chans[0]
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range chans {
		for range ch { // drains what was in flight, then must close
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Close, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
