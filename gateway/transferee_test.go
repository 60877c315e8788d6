package gateway

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/emiago/sipgo/sip"
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

// The gateway takes NOTIFY only for a refer subscription it created: other
// events get 489, a refer NOTIFY outside such a dialog 481 (nothing is
// learned of the gateway's dialogs from it).
func TestNotifyOutsideReferSubscription(t *testing.T) {
	t.Parallel()
	n := newTestNet(t, true)
	p := newPhone(t, n.gw.Addr("udp"), "alice", "desk-secret")
	if res := p.register(300); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d", res.StatusCode)
	}
	for _, c := range []struct {
		name, event, body string
		want              int
	}{
		{"dialog event", "dialog", "", 489},
		{"no event", "", "", 489},
		{"refer outside a dialog", "refer", "SIP/2.0 200 OK\r\n", 481},
	} {
		req := sip.NewRequest(sip.NOTIFY, p.gwURI("alice"))
		req.AppendHeader(&sip.ToHeader{Address: p.gwURI("alice"), Params: sip.NewParams()})
		from := &sip.FromHeader{Address: p.gwURI("alice"), Params: sip.NewParams()}
		from.Params.Add("tag", sip.GenerateTagN(8))
		req.AppendHeader(from)
		if c.event != "" {
			req.AppendHeader(sip.NewHeader("Event", c.event))
		}
		req.AppendHeader(sip.NewHeader("Subscription-State", "terminated"))
		if c.body != "" {
			req.AppendHeader(sip.NewHeader("Content-Type", "message/sipfrag"))
			req.SetBody([]byte(c.body))
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		res, err := p.cli.Do(ctx, req)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if res.StatusCode != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, res.StatusCode, res.Reason, c.want)
		}
	}
}
