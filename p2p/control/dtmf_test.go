package control

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/p2p/wire"
)

// SendDTMF implements endpoint.API the way the endpoint does: digits are
// checked first, then the call must exist and be active.
func (f *fakeAPI) SendDTMF(_ context.Context, id string, req endpoint.DTMFRequest) error {
	if err := wire.CheckDTMFDigits(req.Digits); err != nil {
		return fmt.Errorf("%w: %q: %w", endpoint.ErrInvalidDTMF, req.Digits, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ci, ok := f.calls[id]
	if !ok {
		return fmt.Errorf("endpoint: dtmf %q: %w", id, endpoint.ErrNoSuchCall)
	}
	if ci.State != endpoint.CallActive.String() {
		return fmt.Errorf("%w: cannot send DTMF in a %s call", endpoint.ErrBadState, ci.State)
	}
	f.dtmfSent = append(f.dtmfSent, req)
	return nil
}

func (f *fakeAPI) sentDTMF() []endpoint.DTMFRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]endpoint.DTMFRequest(nil), f.dtmfSent...)
}

func TestDTMFRoute(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.addCall(endpoint.CallInfo{ID: "c-1", Peer: "bob/mobile", State: "active"})
	f.addCall(endpoint.CallInfo{ID: "c-2", Peer: "bob/mobile", State: "ringing"})
	ts, c := serve(t, Options{Endpoint: f})

	r := request(t, ts, "POST", "/v1/calls/c-1/dtmf", `{"digits":"123#"}`, "Content-Type", "application/json")
	if r.status != 200 || !strings.Contains(r.body, `"peer":"bob/mobile"`) || !strings.Contains(r.body, `"duration_ms":100`) {
		t.Fatalf("status %d body %s", r.status, r.body)
	}
	res, err := c.DTMF(t.Context(), "c-1", "*0", 250)
	if err != nil || res.Digits != "*0" || res.DurationMS != 250 || res.Peer != "bob/mobile" || res.CallID != "c-1" {
		t.Fatalf("Client.DTMF = %+v, %v", res, err)
	}
	if got := f.sentDTMF(); len(got) != 2 || got[0].Digits != "123#" || got[1].Digits != "*0" || got[1].DurationMS != 250 {
		t.Fatalf("sent %+v", got)
	}

	for _, tc := range []struct {
		name, path, body string
		status           int
		code, says       string
	}{
		{"bad digit", "/v1/calls/c-1/dtmf", `{"digits":"12x"}`, 400, CodeInvalidDTMF, "character 'x' at position 3"},
		{"no digits", "/v1/calls/c-1/dtmf", `{"digits":""}`, 400, CodeInvalidDTMF, "no digits"},
		{"unknown field", "/v1/calls/c-1/dtmf", `{"digit":"1"}`, 400, CodeBadRequest, "unknown field"},
		{"no body", "/v1/calls/c-1/dtmf", ``, 400, CodeBadRequest, "empty body"},
		{"no such call", "/v1/calls/c-9/dtmf", `{"digits":"1"}`, 404, CodeNoSuchCall, "c-9"},
		{"not active", "/v1/calls/c-2/dtmf", `{"digits":"1"}`, 409, CodeBadState, "ringing"},
	} {
		r := request(t, ts, "POST", tc.path, tc.body, "Content-Type", "application/json")
		wantError(t, r, tc.status, tc.code)
		if !strings.Contains(r.body, tc.says) {
			t.Errorf("%s: body %s does not say %q", tc.name, r.body, tc.says)
		}
	}
	if _, err := c.DTMF(t.Context(), "c-1", "1;", 0); !errors.Is(err, endpoint.ErrInvalidDTMF) {
		t.Errorf("Client.DTMF with a bad digit = %v, want ErrInvalidDTMF", err)
	}
	if _, err := c.DTMF(t.Context(), "", "1", 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Client.DTMF without id = %v", err)
	}
	if got := len(f.sentDTMF()); got != 2 {
		t.Errorf("refused requests were sent: %d sent", got)
	}
	// Without an endpoint (the access server) there is nothing to send on.
	ts2, _ := serve(t, Options{})
	wantError(t, request(t, ts2, "POST", "/v1/calls/c-1/dtmf", `{"digits":"1"}`), 404, CodeNoEndpoint)
}
