package access

import (
	"bytes"
	"fmt"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/wire"
)

// receiveGoroutines counts the goroutines running a session's receive loop.
func receiveGoroutines(t *testing.T) int {
	t.Helper()
	var b bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&b, 2); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range strings.Split(b.String(), "\n\n") {
		if strings.Contains(g, "access.(*Server).receive(") {
			n++
		}
	}
	return n
}

// TestIdleSessionsHoldNoGoroutine: with the poller, an idle logged-in
// endpoint costs the server no goroutine (its stack was most of an
// endpoint's memory, docs/benchmarks.md §8), and the parked sessions still
// answer, push and end. Without the poller each holds one, parked in a read.
// Not parallel: it counts goroutines.
func TestIdleSessionsHoldNoGoroutine(t *testing.T) {
	for _, tc := range []struct {
		name     string
		noPoller bool
		want     int
	}{
		{"poller", false, 0},
		{"no poller", true, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.noPoller = tc.noPoller; c.Keepalive = time.Minute })
			users := make([]string, 8)
			for i := range users {
				users[i] = fmt.Sprintf("u%d", i)
			}
			e.addUsers(users...)
			e.buddies([2]string{"u0", "u1"})
			r0 := newRecorder()
			clients := make([]*Client, len(users))
			for i, u := range users {
				opts := []loginOpt{}
				if i == 0 {
					opts = append(opts, withRecorder(r0))
				}
				clients[i] = e.login(u, "dev", opts...)
			}
			r0.expect(t, dev("u1", "dev", wire.StatusOnline, "127.0.0.1:9"))
			var got int
			deadline := time.Now().Add(wait)
			for {
				if got = receiveGoroutines(t); got == tc.want || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if got != tc.want {
				t.Fatalf("%d receive goroutines for %d idle sessions, want %d", got, len(users), tc.want)
			}
			// Parked sessions wake for a request, and for a close.
			if err := clients[1].SetStatus(t.Context(), wire.StatusAway); err != nil {
				t.Fatal(err)
			}
			r0.expect(t, dev("u1", "dev", wire.StatusAway, "127.0.0.1:9"))
			_ = clients[1].Close()
			r0.expect(t, dev("u1", "dev", wire.StatusOffline, ""))
			waitFor(t, "seven online", func() bool { return e.srv.Status().OnlineEndpoints == 7 })
		})
	}
}

// TestFramesInOneRecord: two frames in one TLS record are both answered at
// once. The second is already decrypted in the TLS layer when the first is
// handled, so no socket readiness will announce it: a session that parked
// on the socket then would answer it only when its read deadline (a
// minute here) woke it.
func TestFramesInOneRecord(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		noPoller bool
	}{{"poller", false}, {"no poller", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *Config) { c.noPoller = tc.noPoller; c.Keepalive = 20 * time.Second })
			e.addUsers("alice")
			r := e.dialRaw()
			r.send(loginRequest(t, "alice", "laptop"))
			if m := r.recv(); m.Type() != wire.TypeLoginResponse {
				t.Fatalf("got %s, want login response", m.Type())
			}
			// Frames 2 and 3 of this direction, in one Write: one record.
			var b []byte
			for seq := uint64(2); seq <= 3; seq++ {
				b = append(b, frame(wire.TypeKeepalive, seq, "{}")...)
			}
			r.write(b)
			for i := range 2 {
				_ = r.tc.SetReadDeadline(time.Now().Add(5 * time.Second))
				m, err := r.wc.Recv()
				if err != nil {
					t.Fatalf("answer %d: %v", i+1, err)
				}
				if m.Type() != wire.TypeKeepaliveAck {
					t.Fatalf("answer %d is %s, want keepalive ack", i+1, m.Type())
				}
			}
		})
	}
}
