package control

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/endpoint"
)

// wrapped returns err as the endpoint returns its errors: with detail.
func wrapped(err error) error { return fmt.Errorf("endpoint: pull from alice/desk: %w", err) }

func TestPullRoute(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   string
		info   endpoint.HandoffInfo
		err    error
		want   endpoint.PullRequest
		state  string
		errMsg string
	}{
		{name: "done", body: `{"from":"desk"}`, info: sampleHandoff(),
			want: endpoint.PullRequest{From: "desk"}, state: "done"},
		{name: "one session of several", body: `{"from":"alice/desk","session_id":"c-00c1b475ad2d9629"}`, info: sampleHandoff(),
			want: endpoint.PullRequest{From: "alice/desk", SessionID: "c-00c1b475ad2d9629"}, state: "done"},
		{name: "rolled back is still a resource", body: `{"from":"desk"}`, info: sampleRolledBack(),
			err:  wrapped(fmt.Errorf("%w: rolled back: bob/mobile refused: endpoint: handoff grant refused: expired", endpoint.ErrHandoffFailed)),
			want: endpoint.PullRequest{From: "desk"}, state: "rolled-back", errMsg: "bob/mobile refused: endpoint: handoff grant refused: expired"},
		{name: "failed with an unmapped cause", body: `{"from":"desk"}`,
			info: endpoint.HandoffInfo{ID: "h-1", Kind: "pull", State: "failed", Error: "disk on fire"},
			err:  errors.New("disk on fire"), want: endpoint.PullRequest{From: "desk"}, state: "failed", errMsg: "disk on fire"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			f.pullInfo, f.pullErr = tc.info, tc.err
			ts, _ := serve(t, Options{Endpoint: f})
			r := request(t, ts, "POST", "/v1/handoffs", tc.body, "Content-Type", "application/json")
			if r.status != 201 {
				t.Fatalf("status %d (%s), want 201", r.status, r.body)
			}
			if loc := r.header.Get("Location"); loc != "/v1/handoffs/"+tc.info.ID {
				t.Errorf("Location = %q, want /v1/handoffs/%s", loc, tc.info.ID)
			}
			got := decodeAs[endpoint.HandoffInfo](t, r)
			if got.ID != tc.info.ID || got.State != tc.state || len(got.Steps) != len(tc.info.Steps) {
				t.Errorf("handoff = %s %s with %d steps, want %s %s with %d", got.ID, got.State, len(got.Steps), tc.info.ID, tc.state, len(tc.info.Steps))
			}
			if !strings.Contains(got.Error, tc.errMsg) || (tc.errMsg == "") != (got.Error == "") {
				t.Errorf("error = %q, want it to say %q", got.Error, tc.errMsg)
			}
			if req := f.pulled(); req == nil || *req != tc.want {
				t.Errorf("Pull got %+v, want %+v", req, tc.want)
			}
		})
	}
	t.Run("full info survives the wire", func(t *testing.T) {
		t.Parallel()
		f := newFake()
		_, c := serve(t, Options{Endpoint: f})
		got, err := c.Pull(t.Context(), endpoint.PullRequest{From: "desk"})
		if err != nil {
			t.Fatal(err)
		}
		want := sampleHandoff()
		if !handoffEqual(got, want) {
			t.Fatalf("got  %+v\nwant %+v", got, want)
		}
	})
}

// handoffEqual compares handoffs, times by instant (JSON keeps the offset,
// not the *time.Location).
func handoffEqual(a, b endpoint.HandoffInfo) bool {
	if !a.Started.Equal(b.Started) || (a.Finished == nil) != (b.Finished == nil) ||
		(a.Finished != nil && !a.Finished.Equal(*b.Finished)) || len(a.Steps) != len(b.Steps) {
		return false
	}
	for i := range a.Steps {
		sa, sb := a.Steps[i], b.Steps[i]
		if !sa.At.Equal(sb.At) {
			return false
		}
		sa.At, sb.At = time.Time{}, time.Time{}
		if sa != sb {
			return false
		}
	}
	a.Started, b.Started, a.Finished, b.Finished, a.Steps, b.Steps = time.Time{}, time.Time{}, nil, nil, nil, nil
	return reflect.DeepEqual(a, b)
}

// TestHandoffErrorMapping covers attempts the endpoint refused outright (no
// handoff id): the answer is the error, mapped like any other.
func TestHandoffErrorMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"policy refused", endpoint.ErrForbidden, 403, CodePolicyRefused},
		{"grant refused", endpoint.ErrGrant, 403, CodeGrantRefused},
		{"nothing to pull", endpoint.ErrNothingToPull, 409, CodeNothingToPull},
		{"several sessions", endpoint.ErrSeveralSessions, 409, CodeSeveralSessions},
		{"handoff failed", endpoint.ErrHandoffFailed, 409, CodeHandoffFailed},
		{"no such handoff", endpoint.ErrNoSuchHandoff, 404, CodeNoSuchHandoff},
		{"failed handoff wins over its cause", fmt.Errorf("%w: rolled back: %w", endpoint.ErrHandoffFailed, endpoint.ErrUnreachable), 409, CodeHandoffFailed},
		{"policy wins over the failure it caused", fmt.Errorf("%w: %w", endpoint.ErrHandoffFailed, endpoint.ErrForbidden), 403, CodePolicyRefused},
		{"unknown device", endpoint.ErrUnknownPeer, 404, CodeUnknownPeer},
		{"device offline", endpoint.ErrOffline, 409, CodeOffline},
		{"already in a call", endpoint.ErrBusy, 409, CodeBusy},
		{"this endpoint", endpoint.ErrInvalidTarget, 400, CodeInvalidTarget},
		{"device unreachable", endpoint.ErrUnreachable, 502, CodeUnreachable},
		{"not logged in", endpoint.ErrNotLoggedIn, 503, CodeNotLoggedIn},
		{"no id and no error", nil, 500, CodeInternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			f.pullInfo = endpoint.HandoffInfo{}
			f.rebindInfo = endpoint.HandoffInfo{}
			if tc.err != nil {
				f.pullErr, f.rebindErr, f.sessionsErr = wrapped(tc.err), wrapped(tc.err), wrapped(tc.err)
			}
			ts, c := serve(t, Options{Endpoint: f})

			r := request(t, ts, "POST", "/v1/handoffs", `{"from":"desk"}`)
			wantError(t, r, tc.status, tc.code)
			if r.header.Get("Location") != "" {
				t.Errorf("an error answer has Location %q", r.header.Get("Location"))
			}
			wantError(t, request(t, ts, "POST", "/v1/rebind", `{"ip":"127.0.0.7"}`), tc.status, tc.code)
			if tc.err != nil {
				wantError(t, request(t, ts, "GET", "/v1/sessions?device=desk", ""), tc.status, tc.code)
			}

			info, err := c.Pull(t.Context(), endpoint.PullRequest{From: "desk"})
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != tc.status || ae.Code != tc.code {
				t.Fatalf("client error = %v, want an *APIError %d %s", err, tc.status, tc.code)
			}
			if info.ID != "" {
				t.Errorf("refused pull returned info %+v", info)
			}
			if s := sentinelForCode(tc.code); s != nil && !errors.Is(err, s) {
				t.Errorf("errors.Is(err, %v) = false across the wire", s)
			}
		})
	}
}

func TestHandoffBadBodies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		path string
		body string
		code string
		says string // the message names what is wrong
	}{
		{"pull malformed", "/v1/handoffs", `{"from":`, CodeBadRequest, ""},
		{"pull unknown field", "/v1/handoffs", `{"from":"desk","force":true}`, CodeBadRequest, "force"},
		{"pull misspelt field", "/v1/handoffs", `{"from":"desk","session":"c-1"}`, CodeBadRequest, "session"},
		{"pull missing from", "/v1/handoffs", `{"session_id":"c-1"}`, CodeBadRequest, `"from"`},
		{"pull blank from", "/v1/handoffs", `{"from":" "}`, CodeBadRequest, `"from"`},
		{"pull wrong type", "/v1/handoffs", `{"from":7}`, CodeBadRequest, ""},
		{"pull empty body", "/v1/handoffs", ``, CodeBadRequest, "empty body"},
		{"pull trailing data", "/v1/handoffs", `{"from":"desk"}{"from":"tv"}`, CodeBadRequest, "trailing"},
		{"pull oversized", "/v1/handoffs", `{"from":"` + strings.Repeat("d", MaxBodyBytes) + `"}`, CodeBodyTooLarge, ""},
		{"rebind bad ip", "/v1/rebind", `{"ip":"127.0.0.300"}`, CodeBadRequest, "127.0.0.300"},
		{"rebind host name", "/v1/rebind", `{"ip":"localhost"}`, CodeBadRequest, "localhost"},
		{"rebind address with port", "/v1/rebind", `{"ip":"127.0.0.7:5000"}`, CodeBadRequest, "127.0.0.7:5000"},
		{"rebind missing ip", "/v1/rebind", `{}`, CodeBadRequest, `"ip"`},
		{"rebind unknown field", "/v1/rebind", `{"ip":"127.0.0.7","port":5000}`, CodeBadRequest, "port"},
		{"rebind malformed", "/v1/rebind", `{"ip"`, CodeBadRequest, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			ts, _ := serve(t, Options{Endpoint: f})
			r := request(t, ts, "POST", tc.path, tc.body)
			wantError(t, r, 400, tc.code)
			if msg := decodeAs[errorBody](t, r).Error; !strings.Contains(msg, tc.says) {
				t.Errorf("message %q does not name %s", msg, tc.says)
			}
			if f.pulled() != nil || f.rebound().IsValid() {
				t.Errorf("a bad body reached the endpoint: pull %+v, rebind %v", f.pulled(), f.rebound())
			}
		})
	}
}

func TestRebindRoute(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		ip    string
		info  endpoint.HandoffInfo
		err   error
		state string
	}{
		{"done", "127.0.0.7", sampleRebind(), nil, "done"},
		{"ipv6", "::1", sampleRebind(), nil, "done"},
		{"no call: only the address changes", "127.0.0.8",
			endpoint.HandoffInfo{ID: "h-0c", Kind: "rebind", State: "done"}, nil, "done"},
		{"failed is still a resource", "127.0.0.9",
			endpoint.HandoffInfo{ID: "h-0d", Kind: "rebind", State: "failed", Error: "endpoint: peer unreachable: bob/mobile did not acknowledge the new address"},
			fmt.Errorf("%w: bob/mobile did not acknowledge the new address", endpoint.ErrUnreachable), "failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			f.rebindInfo, f.rebindErr = tc.info, tc.err
			ts, _ := serve(t, Options{Endpoint: f})
			r := request(t, ts, "POST", "/v1/rebind", `{"ip":"`+tc.ip+`"}`)
			if r.status != 201 {
				t.Fatalf("status %d (%s), want 201", r.status, r.body)
			}
			if loc := r.header.Get("Location"); loc != "/v1/handoffs/"+tc.info.ID {
				t.Errorf("Location = %q", loc)
			}
			got := decodeAs[endpoint.HandoffInfo](t, r)
			if got.ID != tc.info.ID || got.State != tc.state || got.Kind != "rebind" {
				t.Errorf("rebind = %+v", got)
			}
			if !strings.Contains(r.body, `"steps":[`) {
				t.Errorf("steps must be a list, even empty: %s", r.body)
			}
			if want := netip.MustParseAddr(tc.ip); f.rebound() != want {
				t.Errorf("Rebind got %v, want %v", f.rebound(), want)
			}
		})
	}
}

func TestHandoffListRoutes(t *testing.T) {
	t.Parallel()
	f := newFake()
	ts, _ := serve(t, Options{Endpoint: f})

	t.Run("empty list is an array", func(t *testing.T) {
		if r := request(t, ts, "GET", "/v1/handoffs", ""); r.status != 200 || strings.TrimSpace(r.body) != "[]" {
			t.Fatalf("got %d %q, want 200 []", r.status, r.body)
		}
	})
	f.mu.Lock()
	noSteps := endpoint.HandoffInfo{ID: "h-nosteps", Kind: "pull", State: "failed", Error: "endpoint: peer is busy"}
	f.handoffs = []endpoint.HandoffInfo{sampleHandoff(), sampleRolledBack(), noSteps}
	f.mu.Unlock()

	t.Run("list", func(t *testing.T) {
		r := request(t, ts, "GET", "/v1/handoffs", "")
		got := decodeAs[[]endpoint.HandoffInfo](t, r)
		if r.status != 200 || len(got) != 3 || got[0].ID != "h-3f9a0c1d2e4b" || got[1].State != "rolled-back" || len(got[0].Steps) != 12 {
			t.Fatalf("list: %d %+v", r.status, got)
		}
		if strings.Contains(r.body, `"steps":null`) {
			t.Errorf("a handoff without steps has steps null: %s", r.body)
		}
	})
	t.Run("one", func(t *testing.T) {
		r := request(t, ts, "GET", "/v1/handoffs/h-77d0e2a91c05", "")
		if got := decodeAs[endpoint.HandoffInfo](t, r); r.status != 200 || got.State != "rolled-back" || got.Error == "" {
			t.Fatalf("one: %d %+v", r.status, got)
		}
	})
	t.Run("one without steps", func(t *testing.T) {
		r := request(t, ts, "GET", "/v1/handoffs/h-nosteps", "")
		if r.status != 200 || !strings.Contains(r.body, `"steps":[]`) {
			t.Fatalf("got %d %s, want steps []", r.status, r.body)
		}
	})
	t.Run("unknown id", func(t *testing.T) {
		wantError(t, request(t, ts, "GET", "/v1/handoffs/h-nope", ""), 404, CodeNoSuchHandoff)
	})
	t.Run("method not allowed", func(t *testing.T) {
		wantError(t, request(t, ts, "DELETE", "/v1/handoffs/h-nope", ""), 405, CodeMethodNotAllowed)
		wantError(t, request(t, ts, "GET", "/v1/rebind", ""), 405, CodeMethodNotAllowed)
		wantError(t, request(t, ts, "POST", "/v1/sessions", "{}"), 405, CodeMethodNotAllowed)
	})
}

func TestSessionsRoute(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		query  string
		status int
		code   string
		n      int
	}{
		{"one session", "?device=desk", 200, "", 1},
		{"none is an array", "?device=tv", 200, "", 0},
		{"escaped device", "?device=alice%2Fdesk%26x", 200, "", 2},
		{"missing device", "", 400, CodeBadRequest, 0},
		{"blank device", "?device=%20", 400, CodeBadRequest, 0},
		{"unknown device", "?device=fridge", 404, CodeUnknownPeer, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			f.sessions["alice/desk&x"] = []endpoint.SessionInfo{{CallID: "c-1"}, {CallID: "c-2"}}
			ts, _ := serve(t, Options{Endpoint: f})
			r := request(t, ts, "GET", "/v1/sessions"+tc.query, "")
			if tc.code != "" {
				wantError(t, r, tc.status, tc.code)
				return
			}
			got := decodeAs[[]endpoint.SessionInfo](t, r)
			if r.status != 200 || len(got) != tc.n || !strings.HasPrefix(strings.TrimSpace(r.body), "[") {
				t.Fatalf("got %d %s, want %d sessions", r.status, r.body, tc.n)
			}
		})
	}
}

// TestHandoffRoutesUseRequestContext: Pull and Sessions are bound to the
// request, like a dial: a client that gives up cancels them.
func TestHandoffRoutesUseRequestContext(t *testing.T) {
	t.Parallel()
	f := newFake()
	_, c := serve(t, Options{Endpoint: f})
	if _, err := c.Pull(t.Context(), endpoint.PullRequest{From: "desk"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Sessions(t.Context(), "desk"); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	ctxs := []context.Context{f.pullCtx, f.sessionsCtx}
	f.mu.Unlock()
	for i, ctx := range ctxs {
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("context %d was not the request context", i)
		}
	}
}

func TestHandoffCrossOriginRefused(t *testing.T) {
	t.Parallel()
	f := newFake()
	ts, _ := serve(t, Options{Endpoint: f})
	// The API's own refusal, not the handoff policy's: a distinct code.
	wantError(t, request(t, ts, "POST", "/v1/handoffs", `{"from":"desk"}`, "Origin", "http://evil.example"), 403, CodeForbidden)
	wantError(t, request(t, ts, "POST", "/v1/rebind", `{"ip":"127.0.0.7"}`, "Origin", "http://evil.example"), 403, CodeForbidden)
	if f.pulled() != nil || f.rebound().IsValid() {
		t.Fatal("a refused request reached the endpoint")
	}
}

func TestClientHandoffs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	t.Run("pull done", func(t *testing.T) {
		t.Parallel()
		f := newFake()
		_, c := serve(t, Options{Endpoint: f})
		info, err := c.Pull(ctx, endpoint.PullRequest{From: "desk", SessionID: "c-00c1b475ad2d9629"})
		if err != nil || info.State != "done" || len(info.Steps) != 12 {
			t.Fatalf("Pull = %s %d steps, %v", info.State, len(info.Steps), err)
		}
		if req := f.pulled(); req == nil || req.SessionID != "c-00c1b475ad2d9629" {
			t.Errorf("Pull sent %+v", req)
		}
	})
	for _, state := range []string{"rolled-back", "failed", "call-ended", "running"} {
		t.Run("pull "+state+" returns info and error", func(t *testing.T) {
			t.Parallel()
			f := newFake()
			f.pullInfo = sampleRolledBack()
			f.pullInfo.State = state
			f.pullErr = wrapped(endpoint.ErrHandoffFailed)
			_, c := serve(t, Options{Endpoint: f})
			info, err := c.Pull(ctx, endpoint.PullRequest{From: "desk"})
			if info.ID != "h-77d0e2a91c05" || info.State != state || len(info.Steps) != 6 {
				t.Errorf("info = %s %s %d steps, want the recorded attempt", info.ID, info.State, len(info.Steps))
			}
			if !errors.Is(err, endpoint.ErrHandoffFailed) {
				t.Fatalf("err = %v, want one matching ErrHandoffFailed", err)
			}
			var he *HandoffError
			if !errors.As(err, &he) || he.State != state || he.ID != info.ID || he.Kind != "pull" {
				t.Fatalf("err = %#v, want a *HandoffError for %s", err, state)
			}
			want := "control: pull h-77d0e2a91c05 " + state + ": endpoint: handoff failed: rolled back: bob/mobile refused: endpoint: handoff grant refused: expired"
			if err.Error() != want {
				t.Errorf("Error() = %q\nwant      %q", err.Error(), want)
			}
			var ae *APIError
			if errors.As(err, &ae) {
				t.Error("a recorded attempt is not an API error")
			}
		})
	}
	t.Run("pull refused", func(t *testing.T) {
		t.Parallel()
		f := newFake()
		f.pullInfo, f.pullErr = endpoint.HandoffInfo{}, wrapped(endpoint.ErrNothingToPull)
		_, c := serve(t, Options{Endpoint: f})
		info, err := c.Pull(ctx, endpoint.PullRequest{From: "desk"})
		if !errors.Is(err, endpoint.ErrNothingToPull) || errors.Is(err, endpoint.ErrHandoffFailed) {
			t.Fatalf("err = %v, want nothing-to-pull only", err)
		}
		if info.ID != "" {
			t.Errorf("info = %+v, want zero", info)
		}
	})
	t.Run("pull without from", func(t *testing.T) {
		t.Parallel()
		_, c := serve(t, Options{Endpoint: newFake()})
		if _, err := c.Pull(ctx, endpoint.PullRequest{}); !errors.Is(err, ErrBadRequest) {
			t.Fatalf("err = %v, want bad-request", err)
		}
	})
	t.Run("rebind done", func(t *testing.T) {
		t.Parallel()
		f := newFake()
		_, c := serve(t, Options{Endpoint: f})
		info, err := c.Rebind(ctx, "127.0.0.7")
		if err != nil || info.Kind != "rebind" || info.NewAddress != "127.0.0.7:41004" {
			t.Fatalf("Rebind = %+v, %v", info, err)
		}
		if f.rebound() != netip.MustParseAddr("127.0.0.7") {
			t.Errorf("Rebind sent %v", f.rebound())
		}
	})
	t.Run("rebind failed returns info and error", func(t *testing.T) {
		t.Parallel()
		f := newFake()
		f.rebindInfo = endpoint.HandoffInfo{ID: "h-0d", Kind: "rebind", State: "failed", Error: "endpoint: cannot use 127.0.0.9 for media"}
		f.rebindErr = errors.New("endpoint: cannot use 127.0.0.9 for media")
		_, c := serve(t, Options{Endpoint: f})
		info, err := c.Rebind(ctx, "127.0.0.9")
		if info.ID != "h-0d" || !errors.Is(err, endpoint.ErrHandoffFailed) ||
			err.Error() != "control: rebind h-0d failed: endpoint: cannot use 127.0.0.9 for media" {
			t.Fatalf("Rebind = %+v, %v", info, err)
		}
	})
	t.Run("rebind bad ip", func(t *testing.T) {
		t.Parallel()
		_, c := serve(t, Options{Endpoint: newFake()})
		_, err := c.Rebind(ctx, "nowhere")
		if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), `"nowhere"`) {
			t.Fatalf("err = %v, want bad-request naming the address", err)
		}
	})
	t.Run("list and get", func(t *testing.T) {
		t.Parallel()
		f := newFake()
		_, c := serve(t, Options{Endpoint: f})
		if list, err := c.Handoffs(ctx); err != nil || len(list) != 0 || list == nil {
			t.Fatalf("Handoffs before = %#v, %v; want an empty non-nil list", list, err)
		}
		f.mu.Lock()
		f.pullInfo = sampleRolledBack()
		f.mu.Unlock()
		_, _ = c.Pull(ctx, endpoint.PullRequest{From: "desk"})
		_, _ = c.Rebind(ctx, "127.0.0.7")
		list, err := c.Handoffs(ctx)
		if err != nil || len(list) != 2 || list[0].Kind != "pull" || list[1].Kind != "rebind" {
			t.Fatalf("Handoffs = %+v, %v", list, err)
		}
		// Reading a failed handoff succeeds: the state rule is for Pull
		// and Rebind only.
		got, err := c.Handoff(ctx, "h-77d0e2a91c05")
		if err != nil || got.State != "rolled-back" {
			t.Fatalf("Handoff = %+v, %v", got, err)
		}
		if _, err := c.Handoff(ctx, "h-nope"); !errors.Is(err, endpoint.ErrNoSuchHandoff) {
			t.Errorf("Handoff(unknown) = %v, want no-such-handoff", err)
		}
	})
	t.Run("handoff id escaped", func(t *testing.T) {
		t.Parallel()
		f := newFake()
		f.handoffs = []endpoint.HandoffInfo{{ID: "h odd/id?#", State: "done"}}
		_, c := serve(t, Options{Endpoint: f})
		if got, err := c.Handoff(ctx, "h odd/id?#"); err != nil || got.ID != "h odd/id?#" {
			t.Fatalf("Handoff = %+v, %v", got, err)
		}
	})
	t.Run("sessions", func(t *testing.T) {
		t.Parallel()
		f := newFake()
		f.sessions["alice/desk&x=1"] = []endpoint.SessionInfo{{CallID: "c-1"}, {CallID: "c-2"}}
		_, c := serve(t, Options{Endpoint: f})
		s, err := c.Sessions(ctx, "desk")
		if err != nil || len(s) != 1 || s[0].Peer != "bob/mobile" || s[0].PeerMedia != "127.0.0.7:40002" {
			t.Fatalf("Sessions = %+v, %v", s, err)
		}
		if s, err := c.Sessions(ctx, "alice/desk&x=1"); err != nil || len(s) != 2 {
			t.Fatalf("Sessions(escaped) = %+v, %v", s, err)
		}
		if s, err := c.Sessions(ctx, "tv"); err != nil || s == nil || len(s) != 0 {
			t.Fatalf("Sessions(none) = %#v, %v; want an empty non-nil list", s, err)
		}
		if _, err := c.Sessions(ctx, "fridge"); !errors.Is(err, endpoint.ErrUnknownPeer) {
			t.Errorf("Sessions(unknown) = %v, want unknown-peer", err)
		}
		if _, err := c.Sessions(ctx, ""); !errors.Is(err, ErrBadRequest) {
			t.Errorf("Sessions(\"\") = %v, want bad-request", err)
		}
	})
	t.Run("handoff empty id", func(t *testing.T) {
		t.Parallel()
		if _, err := NewClient("127.0.0.1:1", time.Second).Handoff(ctx, ""); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("err = %v, want ErrInvalidArgument", err)
		}
	})
}

func TestHandoffErrorText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		info endpoint.HandoffInfo
		want string
	}{
		{"with cause", endpoint.HandoffInfo{ID: "h-1", Kind: "pull", State: "call-ended", Error: "both parties gone"}, "control: pull h-1 call-ended: both parties gone"},
		{"without cause", endpoint.HandoffInfo{ID: "h-2", Kind: "rebind", State: "failed"}, "control: rebind h-2 failed"},
		{"nothing known", endpoint.HandoffInfo{ID: "h-3"}, "control: handoff h-3 unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := handoffResult(tc.info)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if !errors.Is(err, endpoint.ErrHandoffFailed) {
				t.Fatal("does not match ErrHandoffFailed")
			}
		})
	}
	if err := handoffResult(endpoint.HandoffInfo{ID: "h-4", State: "done"}); err != nil {
		t.Fatalf("done handoff gave %v", err)
	}
}
