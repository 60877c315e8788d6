package control

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-voice/baton/p2p/endpoint"
)

var goroutineHeader = regexp.MustCompile(`(?m)^goroutine (\d+) \[`)

// goroutines returns the stacks of all goroutines, by id.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		if m := goroutineHeader.FindStringSubmatch(g); m != nil {
			out[m[1]] = g
		}
	}
	return out
}

// leakCheck snapshots the goroutines now; the returned func fails the test
// if goroutines started since then are still alive after a generous wait.
// Tests using it must not run in parallel with others.
func leakCheck(t *testing.T) func() {
	t.Helper()
	before := goroutines()
	return func() {
		t.Helper()
		var leaked []string
		deadline := time.Now().Add(10 * time.Second)
		for {
			leaked = leaked[:0]
			for id, stack := range goroutines() {
				if _, ok := before[id]; !ok {
					leaked = append(leaked, stack)
				}
			}
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d goroutines leaked:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestListenEndToEnd drives a real loopback server through the real client:
// calls, events, metrics, then Close ending the open stream, with no
// goroutine left behind. Not parallel: it counts goroutines.
func TestListenEndToEnd(t *testing.T) {
	check := leakCheck(t)
	defer check()

	f := newFake()
	f.addCall(endpoint.CallInfo{ID: "c-in", Direction: "incoming", Peer: "carol/desk", State: "ringing"})
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_e2e_total", Help: "Test."}))
	var logs syncBuffer
	s, err := Listen(t.Context(), "127.0.0.1:0", Options{
		Endpoint: f,
		Gatherer: reg,
		Logger:   slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || strings.HasSuffix(s.Addr(), ":0") {
		t.Fatalf("Addr = %q, want the bound loopback port", s.Addr())
	}
	c := NewClient(s.Addr(), 10*time.Second)
	ctx := t.Context()

	if err := c.Healthz(ctx); err != nil {
		t.Fatalf("Healthz: %v", err)
	}
	stream, seen := startEventsCounted(t, ctx, c, f, "call.", 0)
	ci, err := c.Dial(ctx, "bob")
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	f.publish(endpoint.Event{Type: "presence", Peer: "bob/mobile", State: "online"})
	f.publish(endpoint.Event{Type: "call.ringing", CallID: ci.ID, Peer: "bob"})
	f.publish(endpoint.Event{Type: "call.active", CallID: ci.ID, Peer: "bob", Detail: "codec=PCMU"})
	if _, err := c.Answer(ctx, "c-in"); err != nil {
		t.Fatalf("Answer: %v", err)
	}
	if _, err := c.Dial(ctx, ""); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("Dial(\"\") = %v, want bad-request", err)
	}
	if _, err := c.Call(ctx, "nope"); !errors.Is(err, endpoint.ErrNoSuchCall) {
		t.Fatalf("Call(nope) = %v, want no-such-call", err)
	}
	resp, err := http.Get("http://" + s.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(body.String(), "baton_e2e_total 0") {
		t.Fatalf("metrics:\n%s", body.String())
	}
	http.DefaultClient.CloseIdleConnections()

	// Wait until both call events are through, then close with the
	// stream open: Close must end it and Events must return.
	waitFor(t, "both call events to arrive", func() bool { return seen.Load() == 2 })
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	r := result(t, stream)
	if !errors.Is(r.err, ErrStreamEnded) {
		t.Fatalf("Events after Close = %v, want ErrStreamEnded", r.err)
	}
	if len(r.events) != 2 || r.events[0].Type != "call.ringing" || r.events[1].Type != "call.active" {
		t.Fatalf("streamed %+v, want call.ringing then call.active", r.events)
	}
	if f.subscribers() != 0 {
		t.Fatal("Close left the subscription open")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := c.Healthz(ctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Healthz after Close = %v, want ErrNotRunning", err)
	}
	// Handled errors are logged at the handler, with their code.
	if out := logs.String(); !strings.Contains(out, "code=no-such-call") || !strings.Contains(out, "code=bad-request") {
		t.Fatalf("logs lack the handled errors:\n%s", out)
	}
}

func TestCloseWhileRequestsRun(t *testing.T) {
	check := leakCheck(t)
	defer check()
	f := newFake()
	s, err := Listen(t.Context(), "127.0.0.1:0", Options{Endpoint: f})
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(s.Addr(), 10*time.Second)
	var streams []<-chan streamResult
	for range 3 {
		streams = append(streams, startEvents(t, t.Context(), c, f, "", 0))
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { _ = s.Close() })
	}
	wg.Wait()
	for _, st := range streams {
		if r := result(t, st); !errors.Is(r.err, ErrStreamEnded) {
			t.Errorf("stream ended with %v, want ErrStreamEnded", r.err)
		}
	}
}

func TestServerRefusesWhenClosing(t *testing.T) {
	t.Parallel()
	s, err := Listen(t.Context(), "127.0.0.1:0", Options{Endpoint: newFake()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A request that was read just as Close began still gets an answer.
	rec := httptest.NewRecorder()
	s.serveHTTP(rec, httptest.NewRequest("GET", "/v1/calls", nil))
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), CodeShuttingDown) {
		t.Fatalf("got %d %s, want 503 shutting-down", rec.Code, rec.Body.String())
	}
}

func TestListenErrors(t *testing.T) {
	t.Parallel()
	s, err := Listen(t.Context(), "127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := Listen(t.Context(), s.Addr(), Options{}); err == nil || !strings.Contains(err.Error(), "control: listen on "+s.Addr()) {
		t.Fatalf("Listen on a taken port = %v, want a wrapped error naming it", err)
	}
	if _, err := Listen(t.Context(), "not an address", Options{}); err == nil {
		t.Fatal("Listen on garbage succeeded")
	}
}
