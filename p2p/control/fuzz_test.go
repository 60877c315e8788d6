package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
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
