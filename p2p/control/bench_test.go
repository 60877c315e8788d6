package control

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/endpoint"
)

// BenchmarkEventLine measures encoding one event into a stream line (the
// per-event server cost).
func BenchmarkEventLine(b *testing.B) {
	ev := sampleEvents()[5]
	enc := newEventEncoder()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.line(ev, "handoff."); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEventStream measures events through the whole path: fake
// endpoint -> handler -> HTTP on loopback -> Client.Events decoding.
func BenchmarkEventStream(b *testing.B) {
	f := newFake()
	f.subBuf = b.N + 1 // the benchmark publishes everything at once
	ts := httptest.NewServer(NewHandler(Options{Endpoint: f}))
	defer ts.Close()
	c := NewClient(ts.URL, 10*time.Second)
	ev := sampleEvents()[4]
	got := make(chan int, 1)
	go func() {
		n := 0
		_ = c.Events(b.Context(), "", func(endpoint.Event) error { n++; return nil })
		got <- n
	}()
	deadline := time.Now().Add(10 * time.Second)
	for f.subscribers() == 0 {
		if time.Now().After(deadline) {
			b.Fatal("stream did not subscribe")
		}
		time.Sleep(time.Millisecond)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		f.publish(ev)
	}
	f.dropAll() // ends the stream once the buffered events are written
	if n := <-got; n != b.N {
		b.Fatalf("received %d of %d events", n, b.N)
	}
}

// BenchmarkGetCalls measures GET /v1/calls with 20 calls, in process (no
// socket): routing, the endpoint snapshot and JSON encoding.
func BenchmarkGetCalls(b *testing.B) {
	f := newFake()
	for i := range 20 {
		f.addCall(endpoint.CallInfo{ID: fmt.Sprintf("c-%d", i), Direction: "outgoing", Peer: "bob/mobile",
			State: "active", Codec: "PCMU", Media: &endpoint.MediaInfo{PacketsSent: 1000}})
	}
	h := NewHandler(Options{Endpoint: f})
	req := httptest.NewRequest(http.MethodGet, "/v1/calls", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkPrintEvent measures formatting one event line for the CLI.
func BenchmarkPrintEvent(b *testing.B) {
	ev := sampleEvents()[5]
	b.ReportAllocs()
	for b.Loop() {
		if err := PrintEvent(io.Discard, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPullRoute measures POST /v1/handoffs in process (no socket): the
// control API's own cost around a pull, decoding the request and encoding
// a twelve-step HandoffInfo. The fake's Pull is free; a real one takes tens
// of milliseconds of network and timers.
func BenchmarkPullRoute(b *testing.B) {
	f := newFake()
	h := NewHandler(Options{Endpoint: f})
	body := []byte(`{"from":"desk"}`)
	b.ReportAllocs()
	for b.Loop() {
		f.mu.Lock()
		f.handoffs = f.handoffs[:0] // the fake records every pull
		f.mu.Unlock()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/handoffs", bytes.NewReader(body)))
		if w.Code != http.StatusCreated {
			b.Fatal(w.Code, w.Body)
		}
	}
}

// BenchmarkPrintHandoff measures formatting a twelve-step handoff for the
// CLI.
func BenchmarkPrintHandoff(b *testing.B) {
	info := sampleHandoff()
	b.ReportAllocs()
	for b.Loop() {
		if err := PrintHandoff(io.Discard, info); err != nil {
			b.Fatal(err)
		}
	}
}
