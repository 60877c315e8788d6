package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/baton-voice/baton/p2p/endpoint"
)

// holdingFake is fakeAPI with in-call media updates, the way the endpoint
// answers: unknown call, a call that is not active, a codec the peer
// refuses.
type holdingFake struct{ *fakeAPI }

func (f holdingFake) Hold(_ context.Context, id string, hold bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	ci, ok := f.calls[id]
	if !ok {
		return fmt.Errorf("%w: %q", endpoint.ErrNoSuchCall, id)
	}
	if ci.State != "active" {
		return fmt.Errorf("%w: cannot update the media of a %s call", endpoint.ErrBadState, ci.State)
	}
	ci.MediaDirection, ci.HeldBy = "sendrecv", ""
	if hold {
		ci.MediaDirection, ci.HeldBy = "sendonly", "local"
	}
	f.calls[id] = ci
	return nil
}

func (f holdingFake) SetCodec(_ context.Context, id, codec string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	ci, ok := f.calls[id]
	if !ok {
		return fmt.Errorf("%w: %q", endpoint.ErrNoSuchCall, id)
	}
	if codec != "PCMA" && codec != "PCMU" {
		return fmt.Errorf("%w: bob/mobile refused the media update: unsupported-codec %s", endpoint.ErrMediaRefused, codec)
	}
	ci.Codec = codec
	f.calls[id] = ci
	return nil
}

func TestHoldRoutes(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.addCall(endpoint.CallInfo{ID: "c-1", Peer: "bob/mobile", State: "active", Codec: "PCMU"})
	f.addCall(endpoint.CallInfo{ID: "c-2", Peer: "bob/mobile", State: "ringing"})
	ts, c := serve(t, Options{Endpoint: holdingFake{f}})

	r := request(t, ts, "POST", "/v1/calls/c-1/hold", "")
	if r.status != 200 || !strings.Contains(r.body, `"media_direction":"sendonly"`) || !strings.Contains(r.body, `"held_by":"local"`) {
		t.Fatalf("hold: status %d body %s", r.status, r.body)
	}
	ci, err := c.Resume(t.Context(), "c-1")
	if err != nil || ci.MediaDirection != "sendrecv" || ci.HeldBy != "" {
		t.Fatalf("Client.Resume = %+v, %v", ci, err)
	}
	if ci, err = c.Hold(t.Context(), "c-1"); err != nil || ci.HeldBy != "local" {
		t.Fatalf("Client.Hold = %+v, %v", ci, err)
	}
	if ci, err = c.SetCodec(t.Context(), "c-1", "PCMA"); err != nil || ci.Codec != "PCMA" {
		t.Fatalf("Client.SetCodec = %+v, %v", ci, err)
	}

	for _, tc := range []struct {
		name, path, body string
		status           int
		code             string
		says             string
	}{
		{"unknown call", "/v1/calls/c-9/hold", "", 404, CodeNoSuchCall, "c-9"},
		{"ringing call", "/v1/calls/c-2/resume", "", 409, CodeBadState, "ringing"},
		{"refused codec", "/v1/calls/c-1/codec", `{"codec":"opus"}`, 409, CodeMediaRefused, "unsupported-codec opus"},
		{"no codec", "/v1/calls/c-1/codec", `{}`, 400, CodeBadRequest, "codec is required"},
		{"unknown field", "/v1/calls/c-1/codec", `{"codecs":"PCMA"}`, 400, CodeBadRequest, "codecs"},
	} {
		r := request(t, ts, "POST", tc.path, tc.body, "Content-Type", "application/json")
		if r.status != tc.status || !strings.Contains(r.body, `"code":"`+tc.code+`"`) || !strings.Contains(r.body, tc.says) {
			t.Errorf("%s: status %d body %s, want %d %s saying %q", tc.name, r.status, r.body, tc.status, tc.code, tc.says)
		}
	}
	if _, err := c.SetCodec(t.Context(), "c-1", "opus"); !errors.Is(err, endpoint.ErrMediaRefused) {
		t.Errorf("Client.SetCodec refused = %v, want ErrMediaRefused", err)
	}
}

// TestHoldNotImplemented: an endpoint without media updates answers 501.
func TestHoldNotImplemented(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.addCall(endpoint.CallInfo{ID: "c-1", Peer: "bob/mobile", State: "active"})
	ts, c := serve(t, Options{Endpoint: f})
	r := request(t, ts, "POST", "/v1/calls/c-1/hold", "")
	if r.status != 501 || !strings.Contains(r.body, `"code":"not-implemented"`) || !strings.Contains(r.body, "hold, resume, codec") {
		t.Fatalf("status %d body %s", r.status, r.body)
	}
	if _, err := c.Resume(t.Context(), "c-1"); !errors.Is(err, ErrNotImplemented) {
		t.Fatalf("Client.Resume = %v, want ErrNotImplemented", err)
	}
}

// FuzzCodecRoute: any body to POST /v1/calls/{id}/codec is answered 200
// (a codec the fake takes), 400 (malformed, unknown field, no codec) or
// 409 (refused), always as a JSON error or call, never 500.
func FuzzCodecRoute(f *testing.F) {
	for _, s := range []string{`{"codec":"PCMA"}`, `{"codec":"opus"}`, `{}`, `{"codec":""}`, `{"codec":1}`,
		`{"codec":"PCMA"} {}`, `{"Codec":"PCMU"}`, `null`, ``, `{"codec":"\u00e9"}`} {
		f.Add([]byte(s))
	}
	fk := newFake()
	fk.addCall(endpoint.CallInfo{ID: "c-1", Peer: "bob/mobile", State: "active", Codec: "PCMU"})
	h := NewHandler(Options{Endpoint: holdingFake{fk}})
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/v1/calls/c-1/codec", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusConflict:
		default:
			t.Fatalf("body %q: status %d %s", body, w.Code, w.Body)
		}
		var v map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Fatalf("body %q: answer is not JSON: %v %q", body, err, w.Body)
		}
		if w.Code != http.StatusOK && v["code"] == nil {
			t.Fatalf("body %q: error without a code: %s", body, w.Body)
		}
	})
}

func TestPrintCallsShowsHold(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	calls := []endpoint.CallInfo{
		{ID: "c-1", Peer: "bob/mobile", State: "active", HeldBy: "local", MediaDirection: "sendonly", Media: &endpoint.MediaInfo{PacketsSent: 5}},
		{ID: "c-2", Peer: "bob/mobile", State: "active", MediaDirection: "sendrecv", Media: &endpoint.MediaInfo{}},
	}
	if err := PrintCalls(&b, calls); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(out, "on hold (local, sendonly); sent=5") || strings.Count(out, "on hold") != 1 {
		t.Errorf("PrintCalls:\n%s", out)
	}
}
