package control

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"testing"

	"github.com/baton-voice/baton/p2p/endpoint"
)

// fakeEndpoints is a multi-endpoint process: a fake endpoint per identity.
type fakeEndpoints map[string]*fakeAPI

func (m fakeEndpoints) Endpoint(id string) (endpoint.API, error) {
	if f, ok := m[id]; ok {
		return f, nil
	}
	return nil, fmt.Errorf("%w: %q is not served here", ErrNoSuchEndpoint, id)
}

func (m fakeEndpoints) EndpointIDs() []string {
	var ids []string
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Every route of the one-endpoint API exists under
// /v1/endpoints/{user}/{device}/ for the named endpoint, and only for it.
func TestEndpointsRouting(t *testing.T) {
	t.Parallel()
	desk, phone2 := newFake(), newFake()
	ts, c := serve(t, Options{Endpoints: fakeEndpoints{"alice/desk": desk, "carol/desk": phone2}})

	ids, err := c.Endpoints(t.Context())
	if err != nil || len(ids) != 2 || ids[0] != "alice/desk" || ids[1] != "carol/desk" {
		t.Fatalf("Endpoints = %v, %v; want [alice/desk carol/desk]", ids, err)
	}
	dc := c.ForEndpoint("alice/desk")
	ci, err := dc.Dial(t.Context(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	if desk.lastTarget != "bob" || phone2.lastTarget != "" {
		t.Fatalf("dial went to alice/desk=%q carol/desk=%q, want alice/desk only", desk.lastTarget, phone2.lastTarget)
	}
	calls, err := dc.Calls(t.Context())
	if err != nil || len(calls) != 1 || calls[0].ID != ci.ID {
		t.Fatalf("alice/desk's calls = %v, %v; want the one dialled", calls, err)
	}
	if calls, err := c.ForEndpoint("carol/desk").Calls(t.Context()); err != nil || len(calls) != 0 {
		t.Fatalf("carol/desk's calls = %v, %v; want none", calls, err)
	}
	if _, err := dc.Hangup(t.Context(), ci.ID); err != nil {
		t.Fatal(err)
	}
	if raw, err := dc.Status(t.Context()); err != nil || len(raw) == 0 {
		t.Fatalf("per-endpoint status: %s, %v", raw, err)
	}

	// An endpoint the process does not serve: 404 no-such-endpoint, on
	// every method, before any body is read.
	_, err = c.ForEndpoint("dave/desk").Calls(t.Context())
	if !errors.Is(err, ErrNoSuchEndpoint) {
		t.Fatalf("calls of an unknown endpoint: %v, want ErrNoSuchEndpoint", err)
	}
	wantError(t, request(t, ts, http.MethodPost, "/v1/endpoints/dave/desk/calls", `{"to":"bob"}`), http.StatusNotFound, CodeNoSuchEndpoint)
	// A route that does not exist under a real endpoint: the usual 404.
	wantError(t, request(t, ts, http.MethodGet, "/v1/endpoints/alice/desk/nope", ""), http.StatusNotFound, CodeNotFound)
	// No nesting.
	wantError(t, request(t, ts, http.MethodGet, "/v1/endpoints/alice/desk/endpoints/carol/desk/calls", ""), http.StatusNotFound, CodeNoSuchEndpoint)
	// The cross-origin rule holds under the prefix too.
	wantError(t, request(t, ts, http.MethodPost, "/v1/endpoints/alice/desk/calls", `{"to":"bob"}`, "Origin", "http://evil.example"), http.StatusForbidden, CodeForbidden)
	// A process without endpoints has none of these.
	_, c1 := serve(t, Options{Endpoint: newFake()})
	if _, err := c1.Endpoints(t.Context()); !errors.Is(err, ErrNoSuchEndpoint) {
		t.Fatalf("Endpoints of a one-endpoint process: %v, want ErrNoSuchEndpoint", err)
	}
	if _, err := c1.ForEndpoint("alice/desk").Calls(t.Context()); !errors.Is(err, ErrNoSuchEndpoint) {
		t.Fatalf("--endpoint against a one-endpoint process: %v, want ErrNoSuchEndpoint", err)
	}
	for _, bad := range []string{"alice", "/desk", "alice/", "a/b/c"} {
		if _, err := c.ForEndpoint(bad).Calls(t.Context()); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ForEndpoint(%q): %v, want ErrInvalidArgument", bad, err)
		}
	}
}
