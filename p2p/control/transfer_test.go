package control

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/baton-voice/baton/p2p/endpoint"
)

func (f *fakeAPI) transferred() [2]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastTransfer
}

func TestTransferRoute(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	withCall := func() *fakeAPI {
		f := newFake()
		f.addCall(endpoint.CallInfo{ID: "c-1", Peer: "bob/softphone", State: "active"})
		return f
	}

	t.Run("done", func(t *testing.T) {
		t.Parallel()
		f := withCall()
		ts, c := serve(t, Options{Endpoint: f})
		r := request(t, ts, "POST", "/v1/calls/c-1/transfer", `{"to":"carol"}`, "Content-Type", "application/json")
		if r.status != 200 || !strings.Contains(r.body, `"state":"done"`) || !strings.Contains(r.body, `"target":"carol"`) {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		if got := f.transferred(); got != [2]string{"c-1", "carol"} {
			t.Errorf("Transfer got %v", got)
		}
		info, err := c.Transfer(ctx, "c-1", "carol/laptop")
		if err != nil || info.State != "done" || info.Peer != "bob/softphone" || info.Target != "carol/laptop" || info.NewCallID == "" {
			t.Fatalf("Client.Transfer = %+v, %v", info, err)
		}
	})
	for _, tc := range []struct {
		name     string
		sentinel error
		status   int
		code     string
	}{
		{"policy refused", endpoint.ErrForbidden, 403, CodePolicyRefused},
		{"target offline", endpoint.ErrOffline, 409, CodeOffline},
		{"target busy", endpoint.ErrBusy, 409, "busy"},
		{"not active", endpoint.ErrBadState, 409, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := withCall()
			f.transferErr = fmt.Errorf("endpoint: bob/softphone could not reach carol: %w", tc.sentinel)
			ts, c := serve(t, Options{Endpoint: f})
			r := request(t, ts, "POST", "/v1/calls/c-1/transfer", `{"to":"carol"}`, "Content-Type", "application/json")
			if r.status != tc.status || !strings.Contains(r.body, tc.code) || !strings.Contains(r.body, "carol") {
				t.Errorf("status %d %s, want %d %s naming the target", r.status, r.body, tc.status, tc.code)
			}
			if _, err := c.Transfer(ctx, "c-1", "carol"); !errors.Is(err, tc.sentinel) {
				t.Errorf("Client.Transfer error %v, want %v", err, tc.sentinel)
			}
		})
	}
	t.Run("no such call", func(t *testing.T) {
		t.Parallel()
		_, c := serve(t, Options{Endpoint: newFake()})
		if _, err := c.Transfer(ctx, "c-9", "carol"); !errors.Is(err, endpoint.ErrNoSuchCall) {
			t.Errorf("Client.Transfer error %v, want ErrNoSuchCall", err)
		}
	})
	t.Run("attended", func(t *testing.T) {
		t.Parallel()
		f := withCall()
		f.addCall(endpoint.CallInfo{ID: "c-2", Peer: "carol/laptop", State: "active"})
		ts, c := serve(t, Options{Endpoint: f})
		r := request(t, ts, "POST", "/v1/calls/c-1/transfer", `{"attended":"c-2"}`, "Content-Type", "application/json")
		if r.status != 200 || !strings.Contains(r.body, `"replaces":"c-2"`) || !strings.Contains(r.body, `"target":"carol/laptop"`) {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		if got := f.transferred(); got != [2]string{"c-1", "attended c-2"} {
			t.Errorf("TransferAttended got %v", got)
		}
		info, err := c.TransferAttended(ctx, "c-1", "c-2")
		if err != nil || info.State != "done" || info.Replaces != "c-2" || info.Target != "carol/laptop" {
			t.Fatalf("Client.TransferAttended = %+v, %v", info, err)
		}
		f.transferErr = fmt.Errorf("endpoint: carol/laptop refused: %w", endpoint.ErrForbidden)
		if _, err := c.TransferAttended(ctx, "c-1", "c-2"); !errors.Is(err, endpoint.ErrForbidden) {
			t.Errorf("Client.TransferAttended error %v, want ErrForbidden", err)
		}
		if _, err := c.TransferAttended(ctx, "c-1", "c-9"); !errors.Is(err, endpoint.ErrNoSuchCall) {
			t.Errorf("Client.TransferAttended error %v, want ErrNoSuchCall", err)
		}
	})
	for _, body := range []string{`{}`, `{"to":""}`, `{"to":"carol","call_id":"c-2"}`, `not json`, `{"to":"carol","attended":"c-2"}`, `{"attended":" "}`} {
		t.Run("bad body "+body, func(t *testing.T) {
			t.Parallel()
			f := withCall()
			ts, _ := serve(t, Options{Endpoint: f})
			if r := request(t, ts, "POST", "/v1/calls/c-1/transfer", body, "Content-Type", "application/json"); r.status != 400 {
				t.Errorf("status %d (%s), want 400", r.status, r.body)
			}
			if f.transferred() != [2]string{} {
				t.Error("Transfer was called for a bad body")
			}
		})
	}
}
