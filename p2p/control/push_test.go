package control

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/baton-voice/baton/p2p/endpoint"
)

func samplePush() endpoint.HandoffInfo {
	h := sampleHandoff()
	h.ID, h.Kind, h.From, h.To, h.TargetHandoff = "h-5a5a5a5a5a5a", "push", "alice/laptop", "alice/mobile", "h-0123456789ab"
	return h
}

func TestPushRoute(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	t.Run("done", func(t *testing.T) {
		t.Parallel()
		f := newFake()
		f.pushInfo = samplePush()
		ts, c := serve(t, Options{Endpoint: f})
		r := request(t, ts, "POST", "/v1/calls/c-00c1b475ad2d9629/push", `{"to":"mobile"}`, "Content-Type", "application/json")
		if r.status != 201 || r.header.Get("Location") != "/v1/handoffs/h-5a5a5a5a5a5a" {
			t.Fatalf("status %d Location %q (%s)", r.status, r.header.Get("Location"), r.body)
		}
		if req := f.pushed(); req == nil || req.CallID != "c-00c1b475ad2d9629" || req.To != "mobile" {
			t.Errorf("Push got %+v", req)
		}
		info, err := c.Push(ctx, "c-00c1b475ad2d9629", "alice/mobile")
		if err != nil || info.Kind != "push" || info.To != "alice/mobile" || info.TargetHandoff != "h-0123456789ab" || len(info.Steps) != 12 {
			t.Fatalf("Client.Push = %+v, %v", info, err)
		}
	})
	t.Run("refused is a recorded attempt", func(t *testing.T) {
		t.Parallel()
		f := newFake()
		f.pushInfo = samplePush()
		f.pushInfo.State, f.pushInfo.Error, f.pushInfo.Steps = "refused", "alice/desk refused the push: nobody answered", nil
		f.pushErr = fmt.Errorf("%w: nobody answered", endpoint.ErrDeclined)
		_, c := serve(t, Options{Endpoint: f})
		info, err := c.Push(ctx, "c-1", "desk")
		var he *HandoffError
		if !errors.As(err, &he) || he.State != "refused" || info.ID != "h-5a5a5a5a5a5a" {
			t.Fatalf("Client.Push = %+v, %v; want a refused HandoffError", info, err)
		}
	})
	for _, tc := range []struct {
		name     string
		sentinel error
		status   int
		code     string
	}{
		{"offline target", endpoint.ErrOffline, 409, CodeOffline},
		{"another user's device", endpoint.ErrForbidden, 403, CodePolicyRefused},
		{"no such call", endpoint.ErrNoSuchCall, 404, CodeNoSuchCall},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			f.pushErr = fmt.Errorf("endpoint: push c-1 to mobile: %w", tc.sentinel)
			ts, c := serve(t, Options{Endpoint: f})
			r := request(t, ts, "POST", "/v1/calls/c-1/push", `{"to":"mobile"}`, "Content-Type", "application/json")
			if r.status != tc.status || !strings.Contains(r.body, tc.code) {
				t.Errorf("status %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			if info, err := c.Push(ctx, "c-1", "mobile"); !errors.Is(err, tc.sentinel) || info.ID != "" {
				t.Errorf("Client.Push = %+v, %v; want no attempt and %v", info, err, tc.sentinel)
			}
		})
	}
	for _, body := range []string{`{}`, `{"to":""}`, `{"to":"mobile","call_id":"c-2"}`, `not json`} {
		t.Run("bad body "+body, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			ts, _ := serve(t, Options{Endpoint: f})
			if r := request(t, ts, "POST", "/v1/calls/c-1/push", body, "Content-Type", "application/json"); r.status != 400 {
				t.Errorf("status %d (%s), want 400", r.status, r.body)
			}
			if f.pushed() != nil {
				t.Error("Push was called for a bad body")
			}
		})
	}
}
