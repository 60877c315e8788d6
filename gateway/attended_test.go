package gateway

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestParseReferTo(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, in, user string
		replaces       *Replaces
	}{
		{"name-addr", "<sip:carol@127.0.0.1:5060>", "carol", nil},
		{"bare URI", "sip:carol@gw", "carol", nil},
		{"display name", `"Carol" <sip:carol@gw;transport=udp>`, "carol", nil},
		{"RFC 5589 §7 example", "<sips:transfertarget@chicago.example.com?Replaces=090459243588173445%3Bto-tag%3D7553452%3Bfrom-tag%3D31431>",
			"transfertarget", &Replaces{CallID: "090459243588173445", ToTag: "7553452", FromTag: "31431"}},
		{"call-id with host, other header", "<sip:carol@gw?Require=replaces&Replaces=1-2%40127.0.0.1%3Bfrom-tag%3Db%3Bto-tag%3Da%3Bearly-only>",
			"carol", &Replaces{CallID: "1-2@127.0.0.1", ToTag: "a", FromTag: "b", EarlyOnly: true}},
		{"header name case", "<sip:carol@gw?replaces=x%3Bto-tag%3Da%3Bfrom-tag%3Db>", "carol", &Replaces{CallID: "x", ToTag: "a", FromTag: "b"}},
	} {
		got, err := ParseReferTo(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got.User != c.user || (got.Replaces == nil) != (c.replaces == nil) || (c.replaces != nil && *got.Replaces != *c.replaces) {
			t.Errorf("%s: got %+v (replaces %+v), want user %q replaces %+v", c.name, got, got.Replaces, c.user, c.replaces)
		}
	}
	for _, c := range []struct{ name, in string }{
		{"empty", ""},
		{"no user", "<sip:gw>"},
		{"not a URI", "<carol>"},
		{"two Replaces", "<sip:c@gw?Replaces=x%3Bto-tag%3Da%3Bfrom-tag%3Db&Replaces=y%3Bto-tag%3Da%3Bfrom-tag%3Db>"},
		{"bad escape", "<sip:c@gw?Replaces=x%3Bto-tag%3Da%3Bfrom-tag%3Db%ZZ>"},
		{"no from-tag", "<sip:c@gw?Replaces=x%3Bto-tag%3Da>"},
		{"bad call-id", "<sip:c@gw?Replaces=%3Bto-tag%3Da%3Bfrom-tag%3Db>"},
	} {
		if _, err := ParseReferTo(c.in); !errors.Is(err, ErrBadReferTo) {
			t.Errorf("%s: %v, want ErrBadReferTo", c.name, err)
		}
	}
}

// FuzzParseReferTo: a Refer-To either fails with ErrBadReferTo or names a
// user; a Replaces it carries survives being encoded into a Refer-To
// again.
func FuzzParseReferTo(f *testing.F) {
	for _, s := range []string{
		"<sip:carol@127.0.0.1:5060>",
		"<sip:carol@gw?Replaces=1-2%40127.0.0.1%3Bto-tag%3Da%3Bfrom-tag%3Db>",
		"<sips:t@chicago.example.com?Replaces=090459243588173445%3Bto-tag%3D7553452%3Bfrom-tag%3D31431%3Bearly-only>",
		"sip:x@y?a=b&replaces=%",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		rt, err := ParseReferTo(in)
		if err != nil {
			if !errors.Is(err, ErrBadReferTo) {
				t.Fatalf("error %v is not ErrBadReferTo", err)
			}
			return
		}
		if rt.User == "" {
			t.Fatal("parsed without a user")
		}
		if rt.Replaces == nil {
			return
		}
		enc := strings.NewReplacer("%", "%25", "@", "%40", ";", "%3B", "=", "%3D", "&", "%26", "?", "%3F").Replace(rt.Replaces.String())
		again, err := ParseReferTo("<sip:" + url.PathEscape("u") + "@gw?Replaces=" + enc + ">")
		if err != nil {
			t.Fatalf("re-encoded Replaces %q: %v", rt.Replaces.String(), err)
		}
		if again.Replaces == nil || *again.Replaces != *rt.Replaces {
			t.Fatalf("round trip %+v -> %+v", rt.Replaces, again.Replaces)
		}
	})
}
