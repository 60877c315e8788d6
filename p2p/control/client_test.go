package control

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/endpoint"
)

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestClientMethods(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.addCall(endpoint.CallInfo{ID: "c-in", Direction: "incoming", Peer: "bob/mobile", State: "ringing"})
	_, c := serve(t, Options{Endpoint: f})
	ctx := t.Context()

	if err := c.Healthz(ctx); err != nil {
		t.Errorf("Healthz: %v", err)
	}
	raw, err := c.Status(ctx)
	if err != nil || !strings.HasPrefix(string(raw), `{"identity":"alice/laptop"`) {
		t.Errorf("Status = %s, %v", raw, err)
	}
	b, err := c.Buddies(ctx)
	if err != nil || len(b) != 2 || b[1].User != "bob" {
		t.Errorf("Buddies = %+v, %v", b, err)
	}
	ci, err := c.Dial(ctx, "bob/mobile")
	if err != nil || ci.Peer != "bob/mobile" || ci.State != "ringing" || f.target() != "bob/mobile" {
		t.Fatalf("Dial = %+v, %v", ci, err)
	}
	calls, err := c.Calls(ctx)
	if err != nil || len(calls) != 2 || calls[1].ID != ci.ID {
		t.Errorf("Calls = %+v, %v", calls, err)
	}
	if got, err := c.Call(ctx, ci.ID); err != nil || got.ID != ci.ID {
		t.Errorf("Call = %+v, %v", got, err)
	}
	if got, err := c.Answer(ctx, "c-in"); err != nil || got.State != "active" {
		t.Errorf("Answer = %+v, %v", got, err)
	}
	if got, err := c.Hangup(ctx, "c-in"); err != nil || got.State != "ended" {
		t.Errorf("Hangup = %+v, %v", got, err)
	}
	if _, err := c.Hangup(ctx, "c-in"); !errors.Is(err, endpoint.ErrBadState) {
		t.Errorf("second Hangup = %v, want bad-state", err)
	}
}

func TestClientCallIDEscaped(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.addCall(endpoint.CallInfo{ID: "odd id/with?chars#", State: "active"})
	_, c := serve(t, Options{Endpoint: f})
	got, err := c.Call(t.Context(), "odd id/with?chars#")
	if err != nil || got.ID != "odd id/with?chars#" {
		t.Fatalf("Call = %+v, %v", got, err)
	}
}

func TestClientArgumentErrors(t *testing.T) {
	t.Parallel()
	c := NewClient("127.0.0.1:1", time.Second)
	tests := []struct {
		name string
		call func() error
	}{
		{"call", func() error { _, err := c.Call(t.Context(), ""); return err }},
		{"answer", func() error { _, err := c.Answer(t.Context(), ""); return err }},
		{"hangup", func() error { _, err := c.Hangup(t.Context(), ""); return err }},
		{"events", func() error { return c.Events(t.Context(), "", nil) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.call(); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("err = %v, want ErrInvalidArgument", err)
			}
		})
	}
}

func TestClientAddressForms(t *testing.T) {
	t.Parallel()
	f := newFake()
	ts, _ := serve(t, Options{Endpoint: f})
	host := strings.TrimPrefix(ts.URL, "http://")

	// A control API mounted under a prefix by a bigger server.
	mux := http.NewServeMux()
	mux.Handle("/admin/", http.StripPrefix("/admin", NewHandler(Options{Endpoint: f})))
	prefixed := httptest.NewServer(mux)
	t.Cleanup(prefixed.Close)

	tests := []struct {
		name string
		addr string
	}{
		{"host:port", host},
		{"url", ts.URL},
		{"url with slash", ts.URL + "/"},
		{"url with prefix", prefixed.URL + "/admin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := NewClient(tc.addr, 5*time.Second)
			if err := c.Healthz(t.Context()); err != nil {
				t.Fatalf("Healthz via %q: %v", tc.addr, err)
			}
			if _, err := c.Calls(t.Context()); err != nil {
				t.Fatalf("Calls via %q: %v", tc.addr, err)
			}
		})
	}
	for _, bad := range []string{"ftp://127.0.0.1:7081", "http://", "http://[::1", ""} {
		c := NewClient(bad, time.Second)
		if _, err := c.Calls(t.Context()); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("NewClient(%q).Calls: %v, want ErrInvalidArgument", bad, err)
		}
	}
}

func TestClientConnectionRefused(t *testing.T) {
	t.Parallel()
	addr := closedAddr(t)
	c := NewClient(addr, 5*time.Second)
	tests := []struct {
		name string
		call func() error
	}{
		{"status", func() error { _, err := c.Status(t.Context()); return err }},
		{"dial", func() error { _, err := c.Dial(t.Context(), "bob"); return err }},
		{"events", func() error { return c.Events(t.Context(), "", func(endpoint.Event) error { return nil }) }},
		{"healthz", func() error { return c.Healthz(t.Context()) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.call()
			if !errors.Is(err, ErrNotRunning) {
				t.Fatalf("err = %v, want ErrNotRunning", err)
			}
			want := "control: nothing answers at " + addr + " (is baton running with --admin " + addr + "?)"
			if !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("message %q\ndoes not start with %q", err.Error(), want)
			}
		})
	}
}

func TestAPIErrorText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  *APIError
		want string
	}{
		{"with message", &APIError{Status: 409, Code: "busy", Message: "bob is in another call"}, "409 busy: bob is in another call"},
		{"without message", &APIError{Status: 404, Code: "not-found"}, "404 not-found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.err.Error(); got != tc.want {
				t.Fatalf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestClientForeignErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		status  int
		ctype   string
		body    string
		code    string
		message string
	}{
		{"plain text", 502, "text/plain", "upstream down\n", "bad-gateway", "upstream down"},
		{"empty", 503, "", "", "service-unavailable", "Service Unavailable"},
		{"json without code", 500, "application/json", `{"message":"x"}`, "internal-server-error", `{"message":"x"}`},
		{"odd status", 599, "", "", "http-599", "http-599"},
		{"long html", 500, "text/html", "<html>" + strings.Repeat("é", 300), "internal-server-error", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if tc.ctype != "" {
					w.Header().Set("Content-Type", tc.ctype)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			t.Cleanup(ts.Close)
			_, err := NewClient(ts.URL, 5*time.Second).Calls(t.Context())
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v (%T), want *APIError", err, err)
			}
			if ae.Status != tc.status || ae.Code != tc.code {
				t.Errorf("got %d %q, want %d %q", ae.Status, ae.Code, tc.status, tc.code)
			}
			switch {
			case tc.message == "http-599":
				// no status text: the message is empty, the code says all
			case tc.message == "":
				if len(ae.Message) > 210 || !strings.HasSuffix(ae.Message, "...") || !utf8Valid(ae.Message) {
					t.Errorf("long body not cut cleanly: %q", ae.Message)
				}
			case ae.Message != tc.message:
				t.Errorf("message = %q, want %q", ae.Message, tc.message)
			}
		})
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestClientBadResponses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		path string
		body string
		call func(*Client) error
	}{
		{"calls not json", "/v1/calls", "not json", func(c *Client) error { _, err := c.Calls(t.Context()); return err }},
		{"status not json", "/v1/status", "{", func(c *Client) error { _, err := c.Status(t.Context()); return err }},
		{"healthz not ok", "/healthz", "fine", func(c *Client) error { return c.Healthz(t.Context()) }},
		{"event not json", "/v1/events", "{\"type\":\"login\"}\nnope\n", func(c *Client) error {
			return c.Events(t.Context(), "", func(endpoint.Event) error { return nil })
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != tc.path {
					http.NotFound(w, r)
					return
				}
				_, _ = w.Write([]byte(tc.body))
			}))
			t.Cleanup(ts.Close)
			if err := tc.call(NewClient(ts.URL, 5*time.Second)); !errors.Is(err, ErrBadResponse) {
				t.Fatalf("err = %v, want ErrBadResponse", err)
			}
		})
	}
}

func TestClientTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); ts.Close() })
	c := NewClient(ts.URL, 100*time.Millisecond)
	done := make(chan error, 1)
	go func() { _, err := c.Calls(t.Context()); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), ts.Listener.Addr().String()) {
			t.Fatalf("err = %v, want a timeout naming the address", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the per-request timeout did not end a stuck request")
	}
}

func TestClientContextCancel(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := NewClient(ts.URL, 0).Calls(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
