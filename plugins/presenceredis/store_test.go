package presenceredis_test

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/presence"
	"github.com/baton-voice/baton/p2p/presence/storetest"
	"github.com/baton-voice/baton/plugins/presenceredis"
	"github.com/baton-voice/baton/plugins/presenceredis/redistest"
)

var prefixes atomic.Int64

func freshPrefix() string { return fmt.Sprintf("test%d:", prefixes.Add(1)) }

func open(t *testing.T, srv *redistest.Server, o presenceredis.Options) *presenceredis.Store {
	t.Helper()
	o.Addr = srv.Addr
	if o.Prefix == "" {
		o.Prefix = freshPrefix()
	}
	s, err := presenceredis.Open(context.Background(), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T) presence.Store {
		return open(t, srv, presenceredis.Options{KeyspaceEvents: true})
	})
}

func online(user, device string, port uint16) presence.Entry {
	return presence.Entry{User: user, Device: device, Status: presence.StatusOnline,
		SignalAddr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Since: time.Unix(1700000000, 0).UTC()}
}

func next(t *testing.T, ch <-chan presence.Entry) presence.Entry {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("watch closed")
		}
		return e
	case <-time.After(20 * time.Second):
		t.Fatal("no event within 20s")
	}
	return presence.Entry{}
}

// TestTwoServersShare: what one store (access server) puts, another sees
// and is told about.
func TestTwoServersShare(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	p := freshPrefix()
	a := open(t, srv, presenceredis.Options{Prefix: p})
	b := open(t, srv, presenceredis.Options{Prefix: p})
	ctx := context.Background()
	ch, err := b.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := online("alice", "laptop", 5000)
	if err := a.Put(ctx, e); err != nil {
		t.Fatal(err)
	}
	if got := next(t, ch); got != e {
		t.Fatalf("b saw %+v, want %+v", got, e)
	}
	if got, ok, err := b.Get(ctx, "alice", "laptop"); err != nil || !ok || got != e {
		t.Fatalf("b.Get = %+v %v %v", got, ok, err)
	}
	// b's Delete of a device a holds a live lease for is not b's to make.
	if err := b.Delete(ctx, "alice", "laptop"); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := b.Get(ctx, "alice", "laptop"); got.Status != presence.StatusOnline {
		t.Fatalf("after another server's Delete: %v, want still online", got.Status)
	}
	if err := a.Delete(ctx, "alice", "laptop"); err != nil {
		t.Fatal(err)
	}
	if got := next(t, ch); got.Status != presence.StatusOffline {
		t.Fatalf("after the owner's Delete b saw %v, want offline", got.Status)
	}
}

// TestCrashedServerGoesOffline: a store that stops refreshing its leases
// (its access server died) has its devices taken offline by the others,
// through expired-key notifications or, with them off, the sweep; a store
// that keeps refreshing keeps its devices online past the TTL.
func TestCrashedServerGoesOffline(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ks   bool
	}{{"keyspace events", true}, {"sweep only", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var srv *redistest.Server
			if tc.ks {
				srv = redistest.Start(t)
			} else {
				srv = redistest.Start(t, "--notify-keyspace-events", "")
			}
			p := freshPrefix()
			const ttl = 600 * time.Millisecond
			crash := open(t, srv, presenceredis.Options{Prefix: p, LeaseTTL: ttl, KeyspaceEvents: tc.ks})
			alive := open(t, srv, presenceredis.Options{Prefix: p, LeaseTTL: ttl, KeyspaceEvents: tc.ks, SweepInterval: 300 * time.Millisecond})
			ctx := context.Background()
			ch, err := alive.Watch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := crash.Put(ctx, online("alice", "laptop", 5000)); err != nil {
				t.Fatal(err)
			}
			if err := alive.Put(ctx, online("bob", "desk", 6000)); err != nil {
				t.Fatal(err)
			}
			next(t, ch)
			next(t, ch)
			t0 := time.Now()
			_ = crash.Close() // stops refreshing, like a killed server
			e := next(t, ch)
			if e.User != "alice" || e.Status != presence.StatusOffline {
				t.Fatalf("event %+v, want alice/laptop offline", e)
			}
			t.Logf("offline %v after the owner stopped (TTL %v)", time.Since(t0).Round(time.Millisecond), ttl)
			if d := time.Since(t0); d < ttl/2 {
				t.Fatalf("offline after %v, before the lease could expire", d)
			}
			time.Sleep(3 * ttl)
			if got, _, _ := alive.Get(ctx, "bob", "desk"); got.Status != presence.StatusOnline {
				t.Fatalf("bob/desk, refreshed by a live store, is %v after 3 TTLs", got.Status)
			}
		})
	}
}

// TestLeaseRestoredAfterRedisFlush: Redis loses its data (restart without
// persistence); the owner puts its devices back at the next refresh.
func TestLeaseRestoredAfterRedisFlush(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := open(t, srv, presenceredis.Options{LeaseTTL: 300 * time.Millisecond})
	ctx := context.Background()
	e := online("alice", "laptop", 5000)
	if err := s.Put(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client(t).FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, ok, err := s.Get(ctx, "alice", "laptop")
		if err == nil && ok && got == e {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after FLUSHALL: %+v %v %v; want the entry put back", got, ok, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWatchEndsWhenRedisDies: a dropped subscription closes the watcher
// rather than resubscribing behind its back.
func TestWatchEndsWhenRedisDies(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := open(t, srv, presenceredis.Options{})
	ch, err := s.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("got an event, want the channel closed")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("watch still open 30s after Redis died")
	}
	if err := s.Put(context.Background(), online("alice", "laptop", 1)); err == nil {
		t.Fatal("Put with Redis gone succeeded")
	}
}
