package gateway

import (
	"errors"
	"testing"

	"github.com/baton-voice/baton/p2p/handoff"
)

func TestParseReplaces(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, in string
		want     Replaces
		bad      bool
	}{
		{name: "RFC 3891 §6.1 example", in: "98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff",
			want: Replaces{CallID: "98732@sip.example.com", ToTag: "ff87ff", FromTag: "r33th4x0r"}},
		{name: "early-only", in: "c-0011223344556677;to-tag=a;from-tag=b;early-only",
			want: Replaces{CallID: "c-0011223344556677", ToTag: "a", FromTag: "b", EarlyOnly: true}},
		{name: "spaces and case", in: " abc ; TO-TAG = x ; From-Tag=y ;Early-Only",
			want: Replaces{CallID: "abc", ToTag: "x", FromTag: "y", EarlyOnly: true}},
		{name: "generic parameter ignored", in: "abc;to-tag=x;from-tag=y;foo=bar;baz",
			want: Replaces{CallID: "abc", ToTag: "x", FromTag: "y"}},
		{name: "empty", in: "", bad: true},
		{name: "no tags", in: "abc", bad: true},
		{name: "no from-tag", in: "abc;to-tag=x", bad: true},
		{name: "no to-tag", in: "abc;from-tag=x", bad: true},
		{name: "empty tag", in: "abc;to-tag=;from-tag=y", bad: true},
		{name: "tag without value", in: "abc;to-tag;from-tag=y", bad: true},
		{name: "two to-tags", in: "abc;to-tag=x;to-tag=z;from-tag=y", bad: true},
		{name: "call-id with a space", in: "a b;to-tag=x;from-tag=y", bad: true},
		{name: "call-id with two @", in: "a@b@c;to-tag=x;from-tag=y", bad: true},
		{name: "tag not a token", in: "abc;to-tag=x/y;from-tag=y", bad: true},
		{name: "early-only with a value", in: "abc;to-tag=x;from-tag=y;early-only=1", bad: true},
		{name: "empty parameter", in: "abc;to-tag=x;from-tag=y;", bad: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseReplaces(c.in)
			if c.bad {
				if !errors.Is(err, ErrBadReplaces) {
					t.Fatalf("ParseReplaces(%q) = %+v, %v; want ErrBadReplaces", c.in, got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("ParseReplaces(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
			}
			if again, err := ParseReplaces(got.String()); err != nil || again != got {
				t.Fatalf("round trip of %q: %+v, %v", got.String(), again, err)
			}
		})
	}
}

func FuzzParseReplaces(f *testing.F) {
	for _, s := range []string{
		"98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff",
		"c-0011223344556677;to-tag=a;from-tag=b;early-only",
		"abc;to-tag=x;from-tag=y;foo=bar;baz",
		" abc ; TO-TAG = x ; From-Tag=y ;Early-Only",
		"a;to-tag=%;from-tag=~",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReplaces(s)
		if err != nil {
			if !errors.Is(err, ErrBadReplaces) {
				t.Fatalf("error %v is not ErrBadReplaces", err)
			}
			return
		}
		if !isWord(r.CallID[:len(r.CallID)-len(afterAt(r.CallID))]) || !isToken(r.ToTag) || !isToken(r.FromTag) {
			t.Fatalf("accepted %q as %+v", s, r)
		}
		again, err := ParseReplaces(r.String())
		if err != nil || again != r {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v, %v", s, r, r.String(), again, err)
		}
	})
}

// afterAt is the "@host" part of a Call-ID, if any.
func afterAt(callID string) string {
	for i := 0; i < len(callID); i++ {
		if callID[i] == '@' {
			return callID[i:]
		}
	}
	return ""
}

// RFC 3891 §3, in its order: no match 481; an early dialog we did not
// initiate 481; early-only on a confirmed dialog 486; then authorization
// (the policy, same user by default) 403.
func TestReplacesVerdict(t *testing.T) {
	t.Parallel()
	allow := handoff.Decision{Allow: true}
	deny := handoff.Decision{Reason: "only devices of the same user may pull sessions"}
	confirmed := &dialogView{CallID: "c-1", Owner: "alice/laptop", Peer: "bob/softphone", State: "confirmed"}
	earlyTheirs := &dialogView{CallID: "c-1", Owner: "alice/laptop", Peer: "bob/softphone", State: "early"}
	earlyOurs := &dialogView{CallID: "c-1", Owner: "alice/laptop", Peer: "bob/softphone", State: "early", Ours: true}
	plain := Replaces{CallID: "c-1", ToTag: "a", FromTag: "b"}
	earlyOnly := Replaces{CallID: "c-1", ToTag: "a", FromTag: "b", EarlyOnly: true}
	for _, c := range []struct {
		name string
		r    Replaces
		v    *dialogView
		dec  handoff.Decision
		want int
	}{
		{"no match", plain, nil, allow, 481},
		{"no match beats policy", plain, nil, deny, 481},
		{"early dialog not ours", plain, earlyTheirs, allow, 481},
		{"early dialog not ours beats early-only and policy", earlyOnly, earlyTheirs, deny, 481},
		{"early-only, confirmed", earlyOnly, confirmed, allow, 486},
		{"early-only beats policy", earlyOnly, confirmed, deny, 486},
		{"policy refuses", plain, confirmed, deny, 403},
		{"policy refuses our early dialog", earlyOnly, earlyOurs, deny, 403},
		{"confirmed, allowed", plain, confirmed, allow, 0},
		{"our early dialog, early-only, allowed", earlyOnly, earlyOurs, allow, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got, reason := replacesVerdict(c.r, c.v, c.dec); got != c.want {
				t.Fatalf("verdict %d (%s), want %d", got, reason, c.want)
			}
		})
	}
}
