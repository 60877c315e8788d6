// Package storetest is the conformance suite for presence.Store backends.
// Every backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) presence.Store { return newBackend(t) })
//	}
//
// so the embedded Memory store and out-of-process backends (Redis) are held
// to exactly the same contract.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/presence"
)

// wait bounds every wait for an event. It is generous on purpose: the suite
// checks behaviour, never speed, and runs on loaded CI machines.
const wait = 10 * time.Second

// Run runs the conformance suite. newStore must return an empty store that
// no other test shares (a remote backend uses a fresh key prefix per call);
// the suite closes it (Close must be idempotent, so the factory may also
// register a cleanup that closes it).
func Run(t *testing.T, newStore func(t *testing.T) presence.Store) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s presence.Store)
	}{
		{"PutGet", testPutGet},
		{"GetUnknown", testGetUnknown},
		{"PutReplaces", testPutReplaces},
		{"PutZeroSinceUsesStoreClock", testPutZeroSince},
		{"PutOfflineDropsAddr", testPutOfflineDropsAddr},
		{"PutInvalid", testPutInvalid},
		{"DeleteMarksOffline", testDeleteMarksOffline},
		{"DeleteUnknownIsNoop", testDeleteUnknownIsNoop},
		{"DeleteTwiceNotifiesOnce", testDeleteTwiceNotifiesOnce},
		{"ListUser", testListUser},
		{"WatchOrder", testWatchOrder},
		{"WatchSeesOnlyLaterChanges", testWatchOnlyLater},
		{"WatchersAgreeOnOrder", testWatchersAgree},
		{"WatchCancelClosesChannel", testWatchCancel},
		{"SlowWatcherDoesNotBlockPut", testSlowWatcher},
		{"CloseEndsWatchersAndOps", testClose},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

// Time values with a whole-second-free, monotonic-free, UTC form survive any
// backend's encoding.
var base = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func entry(user, device string, st presence.Status, port uint16, sec int) presence.Entry {
	e := presence.Entry{User: user, Device: device, Status: st, Since: base.Add(time.Duration(sec) * time.Second)}
	if port != 0 {
		e.SignalAddr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	}
	return e
}

func same(a, b presence.Entry) bool {
	return a.User == b.User && a.Device == b.Device && a.Status == b.Status &&
		a.SignalAddr == b.SignalAddr && a.Since.Equal(b.Since)
}

func show(e presence.Entry) string {
	return fmt.Sprintf("%s/%s %s %v since %s", e.User, e.Device, e.Status, e.SignalAddr, e.Since.UTC().Format(time.RFC3339Nano))
}

func mustPut(t *testing.T, s presence.Store, e presence.Entry) {
	t.Helper()
	if err := s.Put(context.Background(), e); err != nil {
		t.Fatalf("Put(%s): %v", show(e), err)
	}
}

func mustGet(t *testing.T, s presence.Store, user, device string) presence.Entry {
	t.Helper()
	e, ok, err := s.Get(context.Background(), user, device)
	if err != nil {
		t.Fatalf("Get(%s/%s): %v", user, device, err)
	}
	if !ok {
		t.Fatalf("Get(%s/%s): not found", user, device)
	}
	return e
}

func watch(t *testing.T, s presence.Store) <-chan presence.Entry {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	return ch
}

func nextEvent(t *testing.T, ch <-chan presence.Entry) presence.Entry {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed, want an entry")
		}
		return e
	case <-time.After(wait):
		t.Fatalf("no watch event within %v", wait)
	}
	return presence.Entry{}
}

func expectNext(t *testing.T, ch <-chan presence.Entry, want presence.Entry) {
	t.Helper()
	if got := nextEvent(t, ch); !same(got, want) {
		t.Fatalf("watch event = %s, want %s", show(got), show(want))
	}
}

func expectClosed(t *testing.T, ch <-chan presence.Entry) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("watch channel still open after %v", wait)
		}
	}
}

func testPutGet(t *testing.T, s presence.Store) {
	e := entry("alice", "laptop", presence.StatusOnline, 5000, 1)
	mustPut(t, s, e)
	if got := mustGet(t, s, "alice", "laptop"); !same(got, e) {
		t.Fatalf("Get = %s, want %s", show(got), show(e))
	}
}

func testGetUnknown(t *testing.T, s presence.Store) {
	mustPut(t, s, entry("alice", "laptop", presence.StatusOnline, 5000, 1))
	for _, tc := range []struct{ name, user, device string }{
		{"unknown user", "bob", "laptop"},
		{"unknown device", "alice", "desk"},
	} {
		_, ok, err := s.Get(context.Background(), tc.user, tc.device)
		if err != nil || ok {
			t.Errorf("%s: Get(%s/%s) = ok %v, err %v; want not found, no error", tc.name, tc.user, tc.device, ok, err)
		}
	}
}

func testPutReplaces(t *testing.T, s presence.Store) {
	mustPut(t, s, entry("alice", "laptop", presence.StatusOnline, 5000, 1))
	away := entry("alice", "laptop", presence.StatusAway, 5001, 2)
	mustPut(t, s, away)
	if got := mustGet(t, s, "alice", "laptop"); !same(got, away) {
		t.Fatalf("Get = %s, want %s", show(got), show(away))
	}
}

func testPutZeroSince(t *testing.T, s presence.Store) {
	e := entry("alice", "laptop", presence.StatusOnline, 5000, 0)
	e.Since = time.Time{}
	mustPut(t, s, e)
	if got := mustGet(t, s, "alice", "laptop"); got.Since.IsZero() {
		t.Fatalf("Get = %s: Since still zero, want the store's clock", show(got))
	}
}

func testPutOfflineDropsAddr(t *testing.T, s presence.Store) {
	mustPut(t, s, entry("alice", "laptop", presence.StatusOffline, 5000, 1))
	got := mustGet(t, s, "alice", "laptop")
	if got.Status != presence.StatusOffline || got.SignalAddr.IsValid() {
		t.Fatalf("Get = %s, want offline without an address", show(got))
	}
	if d := got.Wire(); d.SignalAddr != "" {
		t.Fatalf("Wire() of an offline entry publishes address %q", d.SignalAddr)
	}
}

func testPutInvalid(t *testing.T, s presence.Store) {
	ch := watch(t, s)
	for _, tc := range []struct {
		name string
		e    presence.Entry
	}{
		{"empty user", entry("", "laptop", presence.StatusOnline, 5000, 1)},
		{"upper-case user", entry("Alice", "laptop", presence.StatusOnline, 5000, 1)},
		{"empty device", entry("alice", "", presence.StatusOnline, 5000, 1)},
		{"device with slash", entry("alice", "lap/top", presence.StatusOnline, 5000, 1)},
		{"unknown status", entry("alice", "laptop", presence.StatusUnknown, 5000, 1)},
		{"out-of-range status", entry("alice", "laptop", presence.Status(200), 5000, 1)},
	} {
		if err := s.Put(context.Background(), tc.e); !errors.Is(err, presence.ErrInvalidEntry) {
			t.Errorf("%s: Put = %v, want ErrInvalidEntry", tc.name, err)
		}
	}
	if l, err := s.ListUser(context.Background(), "alice"); err != nil || len(l) != 0 {
		t.Fatalf("after invalid puts ListUser(alice) = %v, %v; want empty", l, err)
	}
	// Nothing was announced: the next event is the marker.
	marker := entry("zed", "marker", presence.StatusOnline, 1, 9)
	mustPut(t, s, marker)
	expectNext(t, ch, marker)
}

func testDeleteMarksOffline(t *testing.T, s presence.Store) {
	ch := watch(t, s)
	on := entry("alice", "laptop", presence.StatusOnline, 5000, 1)
	mustPut(t, s, on)
	expectNext(t, ch, on)
	if err := s.Delete(context.Background(), "alice", "laptop"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	ev := nextEvent(t, ch)
	if ev.User != "alice" || ev.Device != "laptop" || ev.Status != presence.StatusOffline || ev.SignalAddr.IsValid() || ev.Since.IsZero() {
		t.Fatalf("Delete event = %s, want alice/laptop offline, no address, with a time", show(ev))
	}
	got := mustGet(t, s, "alice", "laptop")
	if !same(got, ev) {
		t.Fatalf("after Delete Get = %s, want the event %s", show(got), show(ev))
	}
	l, err := s.ListUser(context.Background(), "alice")
	if err != nil || len(l) != 1 || l[0].Status != presence.StatusOffline {
		t.Fatalf("after Delete ListUser = %v, %v; want the offline device", l, err)
	}
}

func testDeleteUnknownIsNoop(t *testing.T, s presence.Store) {
	ch := watch(t, s)
	if err := s.Delete(context.Background(), "nobody", "nothing"); err != nil {
		t.Fatalf("Delete(unknown) = %v, want nil", err)
	}
	if _, ok, _ := s.Get(context.Background(), "nobody", "nothing"); ok {
		t.Fatal("Delete(unknown) created an entry")
	}
	marker := entry("zed", "marker", presence.StatusOnline, 1, 9)
	mustPut(t, s, marker)
	expectNext(t, ch, marker)
}

func testDeleteTwiceNotifiesOnce(t *testing.T, s presence.Store) {
	mustPut(t, s, entry("alice", "laptop", presence.StatusOnline, 5000, 1))
	ch := watch(t, s)
	for range 2 {
		if err := s.Delete(context.Background(), "alice", "laptop"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	if ev := nextEvent(t, ch); ev.Status != presence.StatusOffline {
		t.Fatalf("event = %s, want offline", show(ev))
	}
	marker := entry("zed", "marker", presence.StatusOnline, 1, 9)
	mustPut(t, s, marker)
	expectNext(t, ch, marker)
}

func testListUser(t *testing.T, s presence.Store) {
	want := []presence.Entry{
		entry("alice", "desk", presence.StatusAway, 5001, 1),
		entry("alice", "laptop", presence.StatusOnline, 5000, 2),
		entry("alice", "phone", presence.StatusOffline, 0, 3),
	}
	// Put out of order: the result must come back sorted by device.
	for _, i := range []int{2, 0, 1} {
		mustPut(t, s, want[i])
	}
	mustPut(t, s, entry("alicia", "laptop", presence.StatusOnline, 6000, 4))
	mustPut(t, s, entry("bob", "desk", presence.StatusOnline, 7000, 5))
	got, err := s.ListUser(context.Background(), "alice")
	if err != nil {
		t.Fatalf("ListUser: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("ListUser(alice) has %d entries, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if !same(got[i], want[i]) {
			t.Errorf("ListUser(alice)[%d] = %s, want %s", i, show(got[i]), show(want[i]))
		}
	}
	if l, err := s.ListUser(context.Background(), "carol"); err != nil || len(l) != 0 {
		t.Fatalf("ListUser(unknown) = %v, %v; want empty, no error", l, err)
	}
}

func testWatchOrder(t *testing.T, s presence.Store) {
	ch := watch(t, s)
	var want []presence.Entry
	statuses := []presence.Status{presence.StatusOnline, presence.StatusAway, presence.StatusOffline}
	for i := range 300 {
		e := entry("alice", fmt.Sprintf("d%d", i%3), statuses[i%3], uint16(1000+i), i)
		if e.Status == presence.StatusOffline {
			e.SignalAddr = netip.AddrPort{}
		}
		want = append(want, e)
		mustPut(t, s, e)
	}
	for i, w := range want {
		if got := nextEvent(t, ch); !same(got, w) {
			t.Fatalf("event %d = %s, want %s", i, show(got), show(w))
		}
	}
}

func testWatchOnlyLater(t *testing.T, s presence.Store) {
	mustPut(t, s, entry("alice", "laptop", presence.StatusOnline, 5000, 1))
	ch := watch(t, s)
	later := entry("bob", "desk", presence.StatusOnline, 6000, 2)
	mustPut(t, s, later)
	expectNext(t, ch, later)
}

func testWatchersAgree(t *testing.T, s presence.Store) {
	a, b := watch(t, s), watch(t, s)
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				e := entry(fmt.Sprintf("user%d", w), fmt.Sprintf("d%d", i%4), presence.StatusOnline, uint16(1+i), w*each+i)
				if err := s.Put(context.Background(), e); err != nil {
					t.Errorf("Put: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	next := make([]int, writers) // next expected put index per writer
	for i := range writers * each {
		ea, eb := nextEvent(t, a), nextEvent(t, b)
		if !same(ea, eb) {
			t.Fatalf("event %d: watchers disagree: %s vs %s", i, show(ea), show(eb))
		}
		// Each writer's own puts arrive in the order it made them.
		sec := int(ea.Since.Sub(base) / time.Second)
		w, n := sec/each, sec%each
		if ea.User != fmt.Sprintf("user%d", w) || n != next[w] {
			t.Fatalf("event %d: %s, want put #%d of user%d", i, show(ea), next[w], w)
		}
		next[w]++
	}
}

func testWatchCancel(t *testing.T, s presence.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	mustPut(t, s, entry("alice", "laptop", presence.StatusOnline, 5000, 1))
	cancel()
	expectClosed(t, ch)
	// The store keeps working for everyone else.
	other := watch(t, s)
	e := entry("bob", "desk", presence.StatusOnline, 6000, 2)
	mustPut(t, s, e)
	expectNext(t, other, e)
}

// testSlowWatcher checks the slow-watcher policy: Put must not wait for a
// watcher that does not read, and the watcher must not silently lose
// updates: what it receives is the exact sequence of changes, either whole
// or cut short by closing the channel.
func testSlowWatcher(t *testing.T, s presence.Store) {
	ch := watch(t, s)
	const n = 5000
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if err := s.Put(context.Background(), entry("alice", "laptop", presence.StatusOnline, uint16(1+i%60000), i)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
	case <-time.After(6 * wait):
		t.Fatal("Put blocked on a watcher that does not read")
	}
	for i := range n {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Logf("watcher closed after %d of %d events (allowed policy)", i, n)
				return
			}
			if got := int(e.Since.Sub(base) / time.Second); got != i {
				t.Fatalf("event %d is put #%d: an update was lost or reordered", i, got)
			}
		case <-time.After(wait):
			t.Fatalf("watcher stalled after %d of %d events without closing", i, n)
		}
	}
}

func testClose(t *testing.T, s presence.Store) {
	ch := watch(t, s)
	mustPut(t, s, entry("alice", "laptop", presence.StatusOnline, 5000, 1))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	expectClosed(t, ch)
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"Put", s.Put(ctx, entry("alice", "laptop", presence.StatusOnline, 5000, 1))},
		{"Delete", s.Delete(ctx, "alice", "laptop")},
		{"Get", func() error { _, _, err := s.Get(ctx, "alice", "laptop"); return err }()},
		{"ListUser", func() error { _, err := s.ListUser(ctx, "alice"); return err }()},
		{"Watch", func() error { _, err := s.Watch(ctx); return err }()},
	} {
		if !errors.Is(tc.err, presence.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", tc.name, tc.err)
		}
	}
}
