package control

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/endpoint"
)

// sampleEvents is one of each documented event type, in a plausible order.
func sampleEvents() []endpoint.Event {
	t0 := time.Date(2025, 1, 2, 8, 12, 1, 123e6, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	return []endpoint.Event{
		{Time: at(0), Type: "login", Detail: "access=127.0.0.1:7000"},
		{Time: at(1), Type: "presence", Peer: "alice/desk", State: "online"},
		{Time: at(2), Type: "call.dialing", CallID: "c-1f2e", Peer: "bob/mobile"},
		{Time: at(3), Type: "call.ringing", CallID: "c-1f2e", Peer: "bob/mobile"},
		{Time: at(4), Type: "call.active", CallID: "c-1f2e", Peer: "bob/mobile", Detail: "codec=PCMU"},
		{Time: at(5), Type: "handoff.step", CallID: "c-1f2e", Peer: "alice/desk", Step: 5, Detail: "stop audio to C"},
		{Time: at(6), Type: "media.rebind", CallID: "c-1f2e", Detail: "127.0.0.2:40000 -> 127.0.0.7:40002"},
		{Time: at(7), Type: "call.ended", CallID: "c-1f2e", Peer: "bob/mobile", Detail: "remote hangup"},
		{Time: at(8), Type: "logout", Detail: "closed"},
	}
}

// streamResult is what a background Client.Events returned.
type streamResult struct {
	events []endpoint.Event
	err    error
}

// startEvents runs c.Events in the background until it returns or n events
// (n > 0) have arrived; the test waits for the server to subscribe.
func startEvents(t *testing.T, ctx context.Context, c *Client, f *fakeAPI, filter string, n int) <-chan streamResult {
	t.Helper()
	out, _ := startEventsCounted(t, ctx, c, f, filter, n)
	return out
}

// startEventsCounted is startEvents that also reports how many events have
// arrived so far.
func startEventsCounted(t *testing.T, ctx context.Context, c *Client, f *fakeAPI, filter string, n int) (<-chan streamResult, *atomic.Int64) {
	t.Helper()
	before := f.subscribers()
	out := make(chan streamResult, 1)
	var count atomic.Int64
	go func() {
		var got []endpoint.Event
		errEnough := errors.New("enough")
		err := c.Events(ctx, filter, func(ev endpoint.Event) error {
			got = append(got, ev)
			count.Add(1)
			if n > 0 && len(got) == n {
				return errEnough
			}
			return nil
		})
		if errors.Is(err, errEnough) {
			err = nil
		}
		out <- streamResult{got, err}
	}()
	waitFor(t, "the stream to subscribe", func() bool {
		select {
		case r := <-out:
			t.Fatalf("Events ended before subscribing: %v", r.err)
		default:
		}
		return f.subscribers() > before
	})
	return out, &count
}

func result(t *testing.T, ch <-chan streamResult) streamResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Events did not return")
		return streamResult{}
	}
}

func TestEventsInOrder(t *testing.T) {
	t.Parallel()
	f := newFake()
	_, c := serve(t, Options{Endpoint: f})
	evs := sampleEvents()
	done := startEvents(t, t.Context(), c, f, "", len(evs))
	for _, ev := range evs {
		f.publish(ev)
	}
	r := result(t, done)
	if r.err != nil {
		t.Fatalf("Events: %v", r.err)
	}
	if len(r.events) != len(evs) {
		t.Fatalf("got %d events, want %d", len(r.events), len(evs))
	}
	for i := range evs {
		if !r.events[i].Time.Equal(evs[i].Time) || r.events[i].Type != evs[i].Type ||
			r.events[i].CallID != evs[i].CallID || r.events[i].Step != evs[i].Step || r.events[i].Detail != evs[i].Detail {
			t.Errorf("event %d = %+v, want %+v", i, r.events[i], evs[i])
		}
	}
	// fn's error ended the stream: the server must notice the client went
	// away and drop its subscription.
	waitFor(t, "the server to unsubscribe", func() bool { return f.subscribers() == 0 })
}

func TestEventsFilter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		filter string
		want   []string
	}{
		{"calls", "call.", []string{"call.dialing", "call.ringing", "call.active", "call.ended"}},
		{"one type", "call.active", []string{"call.active"}},
		{"handoff", "handoff.", []string{"handoff.step"}},
		{"presence", "presence", []string{"presence"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			_, c := serve(t, Options{Endpoint: f})
			done := startEvents(t, t.Context(), c, f, tc.filter, 0)
			for _, ev := range sampleEvents() {
				f.publish(ev)
			}
			// The events sit in the subscription's buffer; ending the
			// subscription now still delivers them, then ends the stream.
			f.dropAll()
			r := result(t, done)
			if !errors.Is(r.err, ErrStreamEnded) {
				t.Fatalf("Events returned %v, want ErrStreamEnded", r.err)
			}
			var got []string
			for _, ev := range r.events {
				got = append(got, ev.Type)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("types = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEventsSubscriberDropped(t *testing.T) {
	t.Parallel()
	f := newFake()
	_, c := serve(t, Options{Endpoint: f})
	done := startEvents(t, t.Context(), c, f, "", 0)
	f.publish(endpoint.Event{Type: "login"})
	f.dropAll() // the endpoint gave up on a slow subscriber
	r := result(t, done)
	if !errors.Is(r.err, ErrStreamEnded) {
		t.Fatalf("err = %v, want ErrStreamEnded", r.err)
	}
	if len(r.events) != 1 || r.events[0].Type != "login" {
		t.Fatalf("events before the drop = %+v, want the login", r.events)
	}
}

func TestEventsContextCancel(t *testing.T) {
	t.Parallel()
	f := newFake()
	_, c := serve(t, Options{Endpoint: f})
	ctx, cancel := context.WithCancel(t.Context())
	done := startEvents(t, ctx, c, f, "", 0)
	cancel()
	r := result(t, done)
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", r.err)
	}
	waitFor(t, "the server to unsubscribe", func() bool { return f.subscribers() == 0 })
}

func TestEventsCallbackError(t *testing.T) {
	t.Parallel()
	f := newFake()
	_, c := serve(t, Options{Endpoint: f})
	stop := errors.New("seen enough")
	done := make(chan error, 1)
	go func() {
		done <- c.Events(t.Context(), "", func(endpoint.Event) error { return stop })
	}()
	waitFor(t, "the stream to subscribe", func() bool { return f.subscribers() == 1 })
	f.publish(endpoint.Event{Type: "login"})
	select {
	case err := <-done:
		if err != stop { //nolint:errorlint // the callback's error is returned as is
			t.Fatalf("err = %v, want the callback's own error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Events did not return")
	}
}

// TestEventsOutliveTimeout checks that the client's per-request timeout
// bounds only the start of a stream, never its length.
func TestEventsOutliveTimeout(t *testing.T) {
	t.Parallel()
	f := newFake()
	ts, _ := serve(t, Options{Endpoint: f})
	const timeout = 100 * time.Millisecond
	c := NewClient(ts.URL, timeout)
	// On a loaded machine the start itself may exceed the short timeout;
	// that is the timeout working, so try again until a stream is open.
	var done <-chan streamResult
	for attempt := 0; done == nil; attempt++ {
		if attempt == 50 {
			t.Fatal("no stream could start within the timeout in 50 attempts")
		}
		ch := make(chan streamResult, 1)
		go func() {
			var got []endpoint.Event
			err := c.Events(t.Context(), "", func(ev endpoint.Event) error {
				got = append(got, ev)
				return errStop
			})
			if errors.Is(err, errStop) {
				err = nil
			}
			ch <- streamResult{got, err}
		}()
		if subscribedOrEnded(f, ch, 1) {
			done = ch
		}
	}
	// Several timeouts pass with the stream idle; it must still deliver.
	time.Sleep(5 * timeout)
	f.publish(endpoint.Event{Type: "call.ringing", CallID: "c-late"})
	r := result(t, done)
	if r.err != nil || len(r.events) != 1 || r.events[0].CallID != "c-late" {
		t.Fatalf("after idle: %+v, %v", r.events, r.err)
	}
}

var errStop = errors.New("stop")

// subscribedOrEnded waits until the fake has want subscribers (true) or the
// stream has returned (false, its result consumed).
func subscribedOrEnded(f *fakeAPI, ch <-chan streamResult, want int) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		select {
		case <-ch:
			return false
		default:
		}
		if f.subscribers() >= want {
			return true
		}
		time.Sleep(2 * time.Millisecond)
	}
	return false
}

func TestEventsHeaders(t *testing.T) {
	t.Parallel()
	f := newFake()
	ts, _ := serve(t, Options{Endpoint: f})
	// The deadline turns a missing flush into a failure, not a hang.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/v1/events?type=call.", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("Content-Type = %q", ct)
	}
	f.publish(endpoint.Event{Type: "presence"})
	f.publish(endpoint.Event{Type: "call.active", CallID: "c-1"})
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	// One line, one object, newline-terminated, flushed without waiting
	// for more events; the presence event was filtered out.
	if line != `{"time":"0001-01-01T00:00:00Z","type":"call.active","call_id":"c-1"}`+"\n" {
		t.Fatalf("first line = %q", line)
	}
}

func TestEventLine(t *testing.T) {
	t.Parallel()
	enc := newEventEncoder()
	ev := endpoint.Event{Type: "media.rebind", CallID: "c-1", Detail: "127.0.0.2:40000 -> 127.0.0.7:40002"}
	tests := []struct {
		name   string
		filter string
		want   string
	}{
		{"no filter", "", `{"time":"0001-01-01T00:00:00Z","type":"media.rebind","call_id":"c-1","detail":"127.0.0.2:40000 -> 127.0.0.7:40002"}` + "\n"},
		{"matching prefix", "media.", `{"time":"0001-01-01T00:00:00Z","type":"media.rebind","call_id":"c-1","detail":"127.0.0.2:40000 -> 127.0.0.7:40002"}` + "\n"},
		{"other prefix", "call.", ""},
		{"longer than type", "media.rebind.x", ""},
	}
	for _, tc := range tests { // sequential: the encoder's buffer is shared
		line, err := enc.line(ev, tc.filter)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if string(line) != tc.want {
			t.Errorf("%s: line = %q, want %q", tc.name, line, tc.want)
		}
		if tc.want == "" && line != nil {
			t.Errorf("%s: filtered event gave %q, want nil", tc.name, line)
		}
	}
}

func TestEventsHead(t *testing.T) {
	t.Parallel()
	f := newFake()
	ts, _ := serve(t, Options{Endpoint: f})
	r := request(t, ts, http.MethodHead, "/v1/events", "")
	if r.status != 200 || r.header.Get("Content-Type") != "application/x-ndjson" || r.body != "" {
		t.Fatalf("HEAD: %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
	}
	if n := f.subscribers(); n != 0 {
		t.Fatalf("HEAD left %d subscriptions", n)
	}
}
