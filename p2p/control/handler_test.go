package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-voice/baton/p2p/endpoint"
)

// serve starts an httptest server over the handler and returns a client for it.
func serve(t *testing.T, opts Options) (*httptest.Server, *Client) {
	t.Helper()
	ts := httptest.NewServer(NewHandler(opts))
	t.Cleanup(ts.Close)
	return ts, NewClient(ts.URL, 10*time.Second)
}

type rawResponse struct {
	status int
	header http.Header
	body   string
}

// request sends a raw request and returns the whole answer.
func request(t *testing.T, ts *httptest.Server, method, path, body string, hdr ...string) rawResponse {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// wantError checks a JSON error answer.
func wantError(t *testing.T, r rawResponse, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status = %d, want %d (body %s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var eb errorBody
	if err := json.Unmarshal([]byte(r.body), &eb); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	if eb.Code != code {
		t.Errorf("code = %q, want %q (error %q)", eb.Code, code, eb.Error)
	}
	if eb.Error == "" {
		t.Error("error message is empty")
	}
}

func decodeAs[T any](t *testing.T, r rawResponse) T {
	t.Helper()
	var v T
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return v
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.addCall(endpoint.CallInfo{ID: "c-in", Direction: "incoming", Peer: "bob/mobile", State: "ringing"})
	f.addCall(endpoint.CallInfo{ID: "c-act", Direction: "outgoing", Peer: "carol/desk", State: "active"})
	ts, _ := serve(t, Options{Endpoint: f})

	t.Run("healthz", func(t *testing.T) {
		r := request(t, ts, "GET", "/healthz", "")
		if r.status != 200 || r.body != "ok" {
			t.Fatalf("got %d %q, want 200 \"ok\"", r.status, r.body)
		}
	})
	t.Run("status", func(t *testing.T) {
		r := request(t, ts, "GET", "/v1/status", "")
		if got := decodeAs[endpoint.StatusInfo](t, r); got.Identity != "alice/laptop" || !got.LoggedIn || got.ActiveCalls != 1 {
			t.Fatalf("status = %+v", got)
		}
	})
	t.Run("buddies", func(t *testing.T) {
		r := request(t, ts, "GET", "/v1/buddies", "")
		got := decodeAs[[]endpoint.BuddyInfo](t, r)
		if len(got) != 2 || got[1].User != "bob" || got[1].Devices[0].SignalAddr != "127.0.0.7:5070" || !got[0].Self {
			t.Fatalf("buddies = %+v", got)
		}
	})
	t.Run("calls", func(t *testing.T) {
		r := request(t, ts, "GET", "/v1/calls", "")
		got := decodeAs[[]endpoint.CallInfo](t, r)
		if len(got) != 2 || got[0].ID != "c-in" || got[1].ID != "c-act" {
			t.Fatalf("calls = %+v", got)
		}
	})
	t.Run("call", func(t *testing.T) {
		r := request(t, ts, "GET", "/v1/calls/c-act", "")
		if got := decodeAs[endpoint.CallInfo](t, r); got.Peer != "carol/desk" || got.State != "active" {
			t.Fatalf("call = %+v", got)
		}
	})
	t.Run("call not found", func(t *testing.T) {
		wantError(t, request(t, ts, "GET", "/v1/calls/nope", ""), 404, CodeNoSuchCall)
	})
	t.Run("answer", func(t *testing.T) {
		r := request(t, ts, "POST", "/v1/calls/c-in/answer", "")
		if got := decodeAs[endpoint.CallInfo](t, r); r.status != 200 || got.State != "active" || got.Codec != "PCMU" {
			t.Fatalf("answer: %d %+v", r.status, got)
		}
	})
	t.Run("answer outgoing is bad state", func(t *testing.T) {
		wantError(t, request(t, ts, "POST", "/v1/calls/c-act/answer", ""), 409, CodeBadState)
	})
	t.Run("hangup", func(t *testing.T) {
		r := request(t, ts, "POST", "/v1/calls/c-act/hangup", "")
		if got := decodeAs[endpoint.CallInfo](t, r); r.status != 200 || got.State != "ended" || got.EndReason != "local hangup" {
			t.Fatalf("hangup: %d %+v", r.status, got)
		}
	})
	t.Run("hangup unknown", func(t *testing.T) {
		wantError(t, request(t, ts, "POST", "/v1/calls/nope/hangup", ""), 404, CodeNoSuchCall)
	})
	t.Run("dial", func(t *testing.T) {
		r := request(t, ts, "POST", "/v1/calls", `{"to":"bob/mobile"}`, "Content-Type", "application/json")
		got := decodeAs[endpoint.CallInfo](t, r)
		if r.status != 201 || got.Peer != "bob/mobile" || got.State != "ringing" || got.ID == "" {
			t.Fatalf("dial: %d %+v", r.status, got)
		}
		if loc := r.header.Get("Location"); loc != "/v1/calls/"+got.ID {
			t.Errorf("Location = %q", loc)
		}
	})
	t.Run("unknown route", func(t *testing.T) {
		wantError(t, request(t, ts, "GET", "/v1/nothing", ""), 404, CodeNotFound)
	})
	t.Run("method not allowed", func(t *testing.T) {
		r := request(t, ts, "PUT", "/v1/calls", "{}")
		wantError(t, r, 405, CodeMethodNotAllowed)
		if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
			t.Errorf("Allow = %q, want GET and POST", allow)
		}
	})
	t.Run("get on an action", func(t *testing.T) {
		wantError(t, request(t, ts, "GET", "/v1/calls/c-in/hangup", ""), 405, CodeMethodNotAllowed)
	})
}

func TestEmptyListsAreArrays(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.buddies = nil
	ts, _ := serve(t, Options{Endpoint: f})
	for _, path := range []string{"/v1/calls", "/v1/buddies"} {
		if r := request(t, ts, "GET", path, ""); strings.TrimSpace(r.body) != "[]" {
			t.Errorf("%s = %q, want []", path, r.body)
		}
	}
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"no such call", endpoint.ErrNoSuchCall, 404, CodeNoSuchCall},
		{"unknown peer", endpoint.ErrUnknownPeer, 404, CodeUnknownPeer},
		{"offline", endpoint.ErrOffline, 409, CodeOffline},
		{"busy", endpoint.ErrBusy, 409, CodeBusy},
		{"declined", endpoint.ErrDeclined, 409, CodeDeclined},
		{"bad state", endpoint.ErrBadState, 409, CodeBadState},
		{"no codec", endpoint.ErrNoCodec, 409, CodeNoCodec},
		{"invalid target", endpoint.ErrInvalidTarget, 400, CodeInvalidTarget},
		{"unreachable", endpoint.ErrUnreachable, 502, CodeUnreachable},
		{"not logged in", endpoint.ErrNotLoggedIn, 503, CodeNotLoggedIn},
		{"closed", endpoint.ErrClosed, 503, CodeClosed},
		{"policy refused", endpoint.ErrForbidden, 403, CodePolicyRefused},
		{"grant refused", endpoint.ErrGrant, 403, CodeGrantRefused},
		{"nothing to pull", endpoint.ErrNothingToPull, 409, CodeNothingToPull},
		{"several sessions", endpoint.ErrSeveralSessions, 409, CodeSeveralSessions},
		{"handoff failed", endpoint.ErrHandoffFailed, 409, CodeHandoffFailed},
		{"no such handoff", endpoint.ErrNoSuchHandoff, 404, CodeNoSuchHandoff},
		{"anything else", errors.New("disk on fire"), 500, CodeInternal},
		{"context deadline", context.DeadlineExceeded, 500, CodeInternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			// Endpoint errors arrive wrapped with detail, never bare.
			f.dialErr = fmt.Errorf("endpoint: dial bob: %w", tc.err)
			ts, c := serve(t, Options{Endpoint: f})

			wantError(t, request(t, ts, "POST", "/v1/calls", `{"to":"bob"}`), tc.status, tc.code)

			_, err := c.Dial(t.Context(), "bob")
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("client error %v (%T) is not an *APIError", err, err)
			}
			if ae.Status != tc.status || ae.Code != tc.code {
				t.Errorf("APIError = %d %s, want %d %s", ae.Status, ae.Code, tc.status, tc.code)
			}
			if want := fmt.Sprintf("%d %s: endpoint: dial bob: %v", tc.status, tc.code, tc.err); err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
			if tc.code != CodeInternal && !errors.Is(err, tc.err) {
				t.Errorf("errors.Is(%v, %v) = false, want true across the wire", err, tc.err)
			}
			if tc.code == CodeInternal && errors.Is(err, tc.err) {
				t.Errorf("an internal error must match no sentinel, matched %v", tc.err)
			}
		})
	}
}

// TestClassifyCodesRoundTrip checks that every code classify can produce
// maps back to the sentinel that produced it, so the two switches stay in step.
func TestClassifyCodesRoundTrip(t *testing.T) {
	t.Parallel()
	sentinels := []error{
		endpoint.ErrNoSuchCall, endpoint.ErrUnknownPeer, endpoint.ErrOffline, endpoint.ErrBusy,
		endpoint.ErrDeclined, endpoint.ErrBadState, endpoint.ErrNoCodec, endpoint.ErrInvalidTarget,
		endpoint.ErrUnreachable, endpoint.ErrNotLoggedIn, endpoint.ErrClosed,
		ErrBadRequest, ErrBodyTooLarge, ErrNoEndpoint, ErrNoMetrics, ErrNotFound,
		ErrMethodNotAllowed, ErrForbidden, ErrShuttingDown,
		endpoint.ErrForbidden, endpoint.ErrGrant, endpoint.ErrNothingToPull, endpoint.ErrSeveralSessions,
		endpoint.ErrHandoffFailed, endpoint.ErrNoSuchHandoff,
	}
	seen := map[string]bool{}
	for _, s := range sentinels {
		status, code := classify(fmt.Errorf("wrapped: %w", s))
		if code == CodeInternal || status == 500 {
			t.Errorf("%v classified as internal", s)
		}
		if seen[code] {
			t.Errorf("code %q used twice", code)
		}
		seen[code] = true
		if got := sentinelForCode(code); got != s {
			t.Errorf("sentinelForCode(%q) = %v, want %v", code, got, s)
		}
		if ae := (&APIError{Status: status, Code: code}); !errors.Is(ae, s) {
			t.Errorf("APIError %s does not match %v", code, s)
		}
	}
}

func TestBadBodies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		code string
	}{
		{"malformed", `{"to":`, CodeBadRequest},
		{"not an object", `["bob"]`, CodeBadRequest},
		{"wrong type", `{"to":42}`, CodeBadRequest},
		{"unknown field", `{"to":"bob","video":true}`, CodeBadRequest},
		{"misspelt field", `{"too":"bob"}`, CodeBadRequest},
		{"trailing data", `{"to":"bob"} {"to":"eve"}`, CodeBadRequest},
		{"trailing garbage", `{"to":"bob"}x`, CodeBadRequest},
		{"empty body", ``, CodeBadRequest},
		{"missing to", `{}`, CodeBadRequest},
		{"blank to", `{"to":"  "}`, CodeBadRequest},
		{"oversized", `{"to":"` + strings.Repeat("b", MaxBodyBytes) + `"}`, CodeBodyTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			ts, _ := serve(t, Options{Endpoint: f})
			wantError(t, request(t, ts, "POST", "/v1/calls", tc.body), 400, tc.code)
			if got := f.target(); got != "" {
				t.Errorf("bad body reached Dial with %q", got)
			}
		})
	}
	t.Run("just under the limit is read", func(t *testing.T) {
		t.Parallel()
		ts, _ := serve(t, Options{Endpoint: newFake()})
		body := `{"to":"bob"}` + strings.Repeat(" ", MaxBodyBytes-len(`{"to":"bob"}`))
		if r := request(t, ts, "POST", "/v1/calls", body); r.status != 201 {
			t.Fatalf("status %d (%s), want 201", r.status, r.body)
		}
	})
}

func TestCrossOriginWriteRefused(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.addCall(endpoint.CallInfo{ID: "c-1", Direction: "outgoing", State: "active"})
	ts, _ := serve(t, Options{Endpoint: f})
	wantError(t, request(t, ts, "POST", "/v1/calls", `{"to":"bob"}`, "Origin", "http://evil.example"), 403, CodeForbidden)
	wantError(t, request(t, ts, "POST", "/v1/calls/c-1/hangup", "", "Origin", "http://127.0.0.1:7081"), 403, CodeForbidden)
	if ci, _ := f.Call("c-1"); ci.State != "active" || f.target() != "" {
		t.Fatalf("a refused request had an effect: %+v, dialed %q", ci, f.target())
	}
	// Reads stay open to browsers' GETs of the same origin: nothing changes.
	if r := request(t, ts, "GET", "/v1/calls", "", "Origin", "http://127.0.0.1:7081"); r.status != 200 {
		t.Fatalf("GET with Origin: %d", r.status)
	}
}

func TestHangupOfForgottenCall(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.forget = true
	f.addCall(endpoint.CallInfo{ID: "c-9", Direction: "incoming", State: "ringing"})
	_, c := serve(t, Options{Endpoint: f})
	ci, err := c.Hangup(t.Context(), "c-9")
	if err != nil {
		t.Fatal(err)
	}
	if ci.ID != "c-9" || ci.State != "ended" {
		t.Fatalf("hangup = %+v, want c-9 ended", ci)
	}
}

func TestAnswerThenCallVanished(t *testing.T) {
	t.Parallel()
	_, c := serve(t, Options{Endpoint: answerVanishes{newFake()}})
	_, err := c.Answer(t.Context(), "c-x")
	if !errors.Is(err, endpoint.ErrNoSuchCall) {
		t.Fatalf("err = %v, want no-such-call", err)
	}
}

// answerVanishes answers fine but then knows no such call (the far party
// hung up in between).
type answerVanishes struct{ *fakeAPI }

func (answerVanishes) Answer(context.Context, string) error { return nil }

func TestDialUsesRequestContext(t *testing.T) {
	t.Parallel()
	f := newFake()
	_, c := serve(t, Options{Endpoint: f})
	if _, err := c.Dial(t.Context(), "bob"); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	ctx := f.dialCtx
	f.mu.Unlock()
	// The server cancels a request's context once its handler returns: a
	// Dial bound to it stops if the client gives up.
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Dial's context was not the request context")
	}
}

func TestNoEndpoint(t *testing.T) {
	t.Parallel()
	ts, _ := serve(t, Options{})
	for _, rt := range []struct{ method, path, body string }{
		{"GET", "/v1/status", ""},
		{"GET", "/v1/buddies", ""},
		{"GET", "/v1/calls", ""},
		{"GET", "/v1/calls/c-1", ""},
		{"POST", "/v1/calls", `{"to":"bob"}`},
		{"POST", "/v1/calls/c-1/answer", ""},
		{"POST", "/v1/calls/c-1/hangup", ""},
		{"GET", "/v1/events", ""},
		{"POST", "/v1/handoffs", `{"from":"desk"}`},
		{"GET", "/v1/handoffs", ""},
		{"GET", "/v1/handoffs/h-1", ""},
		{"GET", "/v1/sessions?device=desk", ""},
		{"POST", "/v1/rebind", `{"ip":"127.0.0.7"}`},
	} {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			r := request(t, ts, rt.method, rt.path, rt.body)
			wantError(t, r, 404, CodeNoEndpoint)
			if !strings.Contains(r.body, "no endpoint") {
				t.Errorf("message %s does not say why", r.body)
			}
		})
	}
	t.Run("healthz still works", func(t *testing.T) {
		if r := request(t, ts, "GET", "/healthz", ""); r.status != 200 {
			t.Fatalf("healthz: %d", r.status)
		}
	})
}

func TestStatusFunc(t *testing.T) {
	t.Parallel()
	type accessStatus struct {
		Users  int `json:"users"`
		Online int `json:"online"`
	}
	t.Run("without endpoint", func(t *testing.T) {
		t.Parallel()
		_, c := serve(t, Options{Status: func() any { return accessStatus{Users: 3, Online: 2} }})
		raw, err := c.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if string(raw) != `{"users":3,"online":2}` {
			t.Fatalf("status = %s", raw)
		}
	})
	t.Run("overrides endpoint", func(t *testing.T) {
		t.Parallel()
		_, c := serve(t, Options{Endpoint: newFake(), Status: func() any { return map[string]int{"sip_registrations": 4} }})
		raw, err := c.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if string(raw) != `{"sip_registrations":4}` {
			t.Fatalf("status = %s", raw)
		}
	})
	t.Run("unencodable", func(t *testing.T) {
		t.Parallel()
		ts, _ := serve(t, Options{Status: func() any { return make(chan int) }})
		wantError(t, request(t, ts, "GET", "/v1/status", ""), 500, CodeInternal)
	})
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	calls := prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_test_calls_total", Help: "Calls placed in this test."})
	reg.MustRegister(calls)
	calls.Add(3)

	ts, _ := serve(t, Options{Gatherer: reg})
	r := request(t, ts, "GET", "/metrics", "")
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	if !strings.Contains(r.body, "baton_test_calls_total 3") {
		t.Fatalf("metrics lack the counter:\n%s", r.body)
	}
	if strings.Contains(r.body, "go_goroutines") {
		t.Error("metrics include the global registry's collectors")
	}

	ts2, _ := serve(t, Options{})
	wantError(t, request(t, ts2, "GET", "/metrics", ""), 404, CodeNoMetrics)
}
