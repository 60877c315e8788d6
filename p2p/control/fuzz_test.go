package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/baton-voice/baton/p2p/endpoint"
)

// FuzzDecodeBody feeds arbitrary bodies to the strict request decoder: it
// must never panic, must classify every failure as a 400, and whatever it
// accepts must survive a round trip unchanged.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{`{"to":"bob"}`, `{"to":"bob/mobile"}`, `{}`, `{"to":"bob","x":1}`,
		`{"to":"bob"} {}`, `{"to":"\u00e9"}`, ``, `null`, `[]`, `{"to":null}`, `{"TO":"bob"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/v1/calls", bytes.NewReader(body))
		var req DialRequest
		err := decodeBody(w, r, &req)
		if err != nil {
			if status, code := classify(err); status != http.StatusBadRequest {
				t.Fatalf("decode error %v classified %d %s, want 400", err, status, code)
			}
			return
		}
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		var again DialRequest
		if err := decodeBody(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(b)), &again); err != nil {
			t.Fatalf("re-encoded %s rejected: %v", b, err)
		}
		if again != req {
			t.Fatalf("round trip %+v -> %+v", req, again)
		}
	})
}

// FuzzReadEvents feeds arbitrary streams to the client's NDJSON reader: no
// panic; each event it delivers must re-encode and decode to itself; an
// error is either a malformed line (ErrBadResponse) or nothing.
func FuzzReadEvents(f *testing.F) {
	for _, ev := range sampleEvents() {
		b, _ := json.Marshal(ev)
		f.Add(append(b, '\n'))
	}
	f.Add([]byte("\n\n{\"type\":\"login\"}\n  \n{\"type\":\"logout\",\"future_field\":[1,2]}"))
	f.Add([]byte("{\"type\":\"login\"}\nnot json\n"))
	f.Add([]byte("{\"time\":\"yesterday\"}\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		n := 0
		err := readEvents(bytes.NewReader(stream), func(ev endpoint.Event) error {
			n++
			b, err := json.Marshal(ev)
			if err != nil {
				t.Fatalf("delivered event does not encode: %v", err)
			}
			var again endpoint.Event
			if err := json.Unmarshal(b, &again); err != nil {
				t.Fatalf("re-encoded event %s does not decode: %v", b, err)
			}
			if !again.Time.Equal(ev.Time) || again.Type != ev.Type || again.Detail != ev.Detail || again.Step != ev.Step {
				t.Fatalf("round trip %+v -> %+v", ev, again)
			}
			return nil
		})
		if err != nil && !errors.Is(err, ErrBadResponse) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if lines := bytes.Count(stream, []byte("\n")) + 1; n > lines {
			t.Fatalf("%d events from %d lines", n, lines)
		}
	})
}

// FuzzDecodeAPIError feeds arbitrary error answers to the client: it always
// gets an *APIError with the status kept, a non-empty code, valid text and a
// bounded message.
func FuzzDecodeAPIError(f *testing.F) {
	f.Add(409, []byte(`{"error":"endpoint: peer is busy","code":"busy"}`))
	f.Add(404, []byte("404 page not found\n"))
	f.Add(500, []byte(`{"error":"x"}`))
	f.Add(599, []byte{})
	f.Add(400, []byte(strings.Repeat("\xff", 300)))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 999 {
			return // not an HTTP status; net/http never hands one over
		}
		e := decodeAPIError(status, body)
		if e.Status != status || e.Code == "" {
			t.Fatalf("decodeAPIError(%d, %q) = %+v", status, body, e)
		}
		if !json.Valid(body) && len(e.Message) > 210 {
			t.Fatalf("message not bounded: %d bytes", len(e.Message))
		}
		if !json.Valid(body) && utf8.ValidString(string(body)) && !utf8.ValidString(e.Message) {
			t.Fatalf("cutting made invalid UTF-8: %q", e.Message)
		}
		if e.Error() == "" {
			t.Fatal("empty Error()")
		}
	})
}

// FuzzHandoffBodies feeds arbitrary bodies to POST /v1/handoffs and POST
// /v1/rebind: no panic; the answer is 201 or a 400; and what reaches the
// endpoint is what the body said (a non-blank device; the IP it names).
func FuzzHandoffBodies(f *testing.F) {
	for _, s := range []string{`{"from":"desk"}`, `{"from":"alice/desk","session_id":"c-1"}`, `{"from":""}`,
		`{"ip":"127.0.0.7"}`, `{"ip":"::1"}`, `{"ip":"fe80::1%eth0"}`, `{"ip":"127.0.0.300"}`, `{"ip":"127.0.0.7","from":"desk"}`,
		`{"from":"desk","session_id":null}`, `{"ip":" 127.0.0.7"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fake := newFake()
		h := NewHandler(Options{Endpoint: fake})

		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/handoffs", bytes.NewReader(body)))
		switch w.Code {
		case http.StatusCreated:
			req := fake.pulled()
			if req == nil || strings.TrimSpace(req.From) == "" {
				t.Fatalf("201 for %q but Pull got %+v", body, req)
			}
		case http.StatusBadRequest:
			if fake.pulled() != nil {
				t.Fatalf("400 for %q but Pull was called", body)
			}
		default:
			t.Fatalf("pull %q: status %d %s", body, w.Code, w.Body)
		}

		w = httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/rebind", bytes.NewReader(body)))
		switch w.Code {
		case http.StatusCreated:
			var req RebindRequest
			if err := json.Unmarshal(body, &req); err != nil {
				t.Fatalf("201 for %q, which does not decode: %v", body, err)
			}
			if want, err := netip.ParseAddr(req.IP); err != nil || fake.rebound() != want {
				t.Fatalf("201 for %q but Rebind got %v (want %v, %v)", body, fake.rebound(), want, err)
			}
		case http.StatusBadRequest:
			if fake.rebound().IsValid() {
				t.Fatalf("400 for %q but Rebind was called", body)
			}
		default:
			t.Fatalf("rebind %q: status %d %s", body, w.Code, w.Body)
		}
	})
}
