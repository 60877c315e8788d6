package plugins

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/presence"
	"github.com/baton-voice/baton/p2p/presence/storetest"
	"github.com/baton-voice/baton/plugins/presenceredis/redistest"
)

func loadPresence(t *testing.T, cfg Config) *PresenceClient {
	t.Helper()
	c, err := LoadPresence(context.Background(), PresenceConfig{Config: cfg, CallTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("LoadPresence: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestPluginPresenceConformance runs the presence.Store suite through the
// host's gRPC client against real plugin processes: presence.Memory in the
// test plugin, and the in-tree presence-redis against a real redis-server.
func TestPluginPresenceConformance(t *testing.T) {
	t.Parallel()
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		bin := builds.Bin(t, pkgTest)
		storetest.Run(t, func(t *testing.T) presence.Store {
			return loadPresence(t, fastConfig(t, bin, "-mode", "memory"))
		})
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Start(t)
		bin := builds.Bin(t, pkgRedis)
		var n atomic.Int64
		storetest.Run(t, func(t *testing.T) presence.Store {
			return loadPresence(t, fastConfig(t, bin, "-addr", srv.Addr, "-prefix", fmt.Sprintf("conf%d:", n.Add(1))))
		})
	})
}

func onlineEntry(user, device string, port uint16) presence.Entry {
	return presence.Entry{User: user, Device: device, Status: presence.StatusOnline,
		SignalAddr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Since: time.Unix(1700000000, 0).UTC()}
}

func nextEntry(t *testing.T, ch <-chan presence.Entry) (presence.Entry, bool) {
	t.Helper()
	select {
	case e, ok := <-ch:
		return e, ok
	case <-time.After(wait):
		t.Fatalf("no watch event within %v", wait)
	}
	return presence.Entry{}, false
}

// TestPluginPresenceKilled: a presence plugin killed with SIGKILL closes
// the watchers, calls fail with ErrUnavailable while it is down, and once
// the supervisor has restarted it the host's devices are back (replayed
// into the fresh in-memory store), a delete that failed meanwhile is
// applied, and Watch works again.
func TestPluginPresenceKilled(t *testing.T) {
	t.Parallel()
	c := loadPresence(t, fastConfig(t, builds.Bin(t, pkgTest), "-mode", "memory"))
	ctx := context.Background()
	ch, err := c.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := onlineEntry("alice", "laptop", 5000), onlineEntry("bob", "desk", 6000)
	for _, e := range []presence.Entry{alice, bob} {
		if err := c.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
		if got, _ := nextEntry(t, ch); got != e {
			t.Fatalf("event %+v, want %+v", got, e)
		}
	}
	pid := c.Supervisor().PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, ok := nextEntry(t, ch); ok {
		t.Fatal("watch got an event after the kill, want it closed")
	}
	// While down (or already back): a Delete either reaches the plugin or
	// is remembered; either way bob/desk ends offline.
	derr := c.Delete(ctx, "bob", "desk")
	if derr != nil && !errors.Is(derr, ErrUnavailable) {
		t.Fatalf("Delete while down = %v, want nil or ErrUnavailable", derr)
	}
	t.Logf("delete right after the kill: %v", derr)
	eventually(t, "a restarted plugin", func() bool { p := c.Supervisor().PID(); return p != 0 && p != pid })
	eventually(t, "alice replayed and bob's delete applied", func() bool {
		a, aok, err1 := c.Get(ctx, "alice", "laptop")
		b, bok, err2 := c.Get(ctx, "bob", "desk")
		return err1 == nil && err2 == nil && aok && a == alice && (!bok || b.Status == presence.StatusOffline)
	})
	ch2, err := c.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch after the restart: %v", err)
	}
	carol := onlineEntry("carol", "mobile", 7000)
	if err := c.Put(ctx, carol); err != nil {
		t.Fatal(err)
	}
	if got, _ := nextEntry(t, ch2); got != carol {
		t.Fatalf("event after restart %+v, want %+v", got, carol)
	}
	if st := c.Supervisor().Stats(); st.Restarts < 1 {
		t.Fatalf("stats %+v: want a restart", st)
	}
}

// TestPluginPresenceHung: a plugin that stops answering (SIGSTOP) makes
// calls fail with ErrUnavailable within the call deadline instead of
// hanging; the supervisor kills and restarts it.
func TestPluginPresenceHung(t *testing.T) {
	t.Parallel()
	cfg := fastConfig(t, builds.Bin(t, pkgTest), "-mode", "memory")
	cfg.HealthTimeout = 200 * time.Millisecond
	c, err := LoadPresence(context.Background(), PresenceConfig{Config: cfg, CallTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	if err := c.Put(ctx, onlineEntry("alice", "laptop", 5000)); err != nil {
		t.Fatal(err)
	}
	pid := c.Supervisor().PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	eventually(t, "the plugin stopped", func() bool { return procState(pid) == "T" })
	t0 := time.Now()
	err = c.Put(ctx, onlineEntry("bob", "desk", 6000))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Put to a hung plugin = %v, want ErrUnavailable", err)
	}
	t.Logf("Put to the hung plugin failed after %v: %v", time.Since(t0).Round(time.Millisecond), err)
	eventually(t, "the hung plugin replaced", func() bool { p := c.Supervisor().PID(); return p != 0 && p != pid })
	eventually(t, "alice replayed into the new plugin", func() bool {
		e, ok, err := c.Get(ctx, "alice", "laptop")
		return err == nil && ok && e.Status == presence.StatusOnline
	})
}

// procState is the state letter of pid in /proc (T: stopped), or "".
func procState(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) == 0 {
		return ""
	}
	return f[0]
}
