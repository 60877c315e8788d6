package gateway

import (
	"errors"
	"testing"
)

func TestDialTarget(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"bob", "bob"},
		{"Bob", "bob"},
		{"bob+mobile", "bob/mobile"},
		{"bob/mobile", "bob/mobile"},
		{"bob%2Fmobile", "bob/mobile"},
		{"bob.smith+desk-2", "bob.smith/desk-2"},
		{"1001", "1001"},
	} {
		got, err := dialTarget(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("dialTarget(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if back, err := dialTarget(sipUser(got)); err != nil || back != got {
			t.Errorf("sipUser(%q) = %q does not dial back: %q %v", got, sipUser(got), back, err)
		}
	}
	for _, in := range []string{"", "+mobile", "bob+", "bob+a+b", "../etc", "bob%zz", "bob smith", ".bob", "a/b/c"} {
		if got, err := dialTarget(in); !errors.Is(err, ErrBadTarget) {
			t.Errorf("dialTarget(%q) = %q, %v; want ErrBadTarget", in, got, err)
		}
	}
}

func FuzzDialTarget(f *testing.F) {
	for _, s := range []string{"bob", "bob+mobile", "bob%2Fmobile", "", "%", "a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := dialTarget(in)
		if err != nil {
			if !errors.Is(err, ErrBadTarget) {
				t.Fatalf("error %v does not wrap ErrBadTarget", err)
			}
			return
		}
		if again, err := dialTarget(sipUser(got)); err != nil || again != got {
			t.Fatalf("%q -> %q does not round-trip: %q %v", in, got, again, err)
		}
	})
}
