package gateway

import (
	"errors"
	"fmt"
	"testing"
)

func TestParseSipfrag(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, in string
		code     int
		reason   string
	}{
		{"status line", "SIP/2.0 200 OK\r\n", 200, "OK"},
		{"no line end", "SIP/2.0 100 Trying", 100, "Trying"},
		{"with headers", "SIP/2.0 404 Not Found\r\nContent-Length: 0\r\n\r\n", 404, "Not Found"},
		{"LF only", "SIP/2.0 486 Busy Here\n", 486, "Busy Here"},
		{"no reason", "SIP/2.0 603\r\n", 603, ""},
	} {
		code, reason, err := ParseSipfrag([]byte(c.in))
		if err != nil || code != c.code || reason != c.reason {
			t.Errorf("%s: %d %q %v, want %d %q", c.name, code, reason, err, c.code, c.reason)
		}
	}
	for _, c := range []struct{ name, in string }{
		{"empty", ""},
		{"a request line", "INVITE sip:carol@gw SIP/2.0\r\n"},
		{"other version", "SIP/3.0 200 OK"},
		{"code not a number", "SIP/2.0 2x0 OK"},
		{"code out of range", "SIP/2.0 700 Nope"},
		{"code too short", "SIP/2.0 20 OK"},
		{"leading space", " SIP/2.0 200 OK"},
	} {
		if _, _, err := ParseSipfrag([]byte(c.in)); !errors.Is(err, ErrBadSipfrag) {
			t.Errorf("%s: %v, want ErrBadSipfrag", c.name, err)
		}
	}
}

// FuzzParseSipfrag: a sipfrag either fails with ErrBadSipfrag or yields a
// status 100-699 that a status line built from it parses back to.
func FuzzParseSipfrag(f *testing.F) {
	for _, s := range []string{"SIP/2.0 200 OK\r\n", "SIP/2.0 100 Trying", "SIP/2.0 404 Not Found\r\nX: y\r\n", "SIP/2.0 999 x", "garbage"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		code, reason, err := ParseSipfrag(in)
		if err != nil {
			if !errors.Is(err, ErrBadSipfrag) {
				t.Fatalf("error %v is not ErrBadSipfrag", err)
			}
			return
		}
		if code < 100 || code > 699 {
			t.Fatalf("code %d", code)
		}
		c2, r2, err := ParseSipfrag([]byte(fmt.Sprintf("SIP/2.0 %d %s\r\n", code, reason)))
		if err != nil || c2 != code || r2 != reason {
			t.Fatalf("round trip %d %q -> %d %q %v", code, reason, c2, r2, err)
		}
	})
}
