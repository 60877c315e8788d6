package sipbridge

import (
	"errors"
	"testing"
	"time"

	"github.com/icholy/digest"
)

func TestVerifier(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	accounts := map[string]string{"alice": HA1("alice", "baton", "s3cret")}
	v := NewVerifier("baton", time.Minute, clock, func(u string) (string, bool) { h, ok := accounts[u]; return h, ok })

	answer := func(t *testing.T, user, pass string, nc int) string {
		t.Helper()
		chal, err := digest.ParseChallenge(v.Challenge(false))
		if err != nil {
			t.Fatal(err)
		}
		cred, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: "sip:baton", Username: user, Password: pass, Count: nc})
		if err != nil {
			t.Fatal(err)
		}
		return cred.String()
	}

	good := answer(t, "alice", "s3cret", 1)
	if u, err := v.Verify(good, "REGISTER"); err != nil || u != "alice" {
		t.Fatalf("good credentials: %q %v", u, err)
	}
	if _, err := v.Verify(good, "REGISTER"); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed nc: err = %v, want ErrReplay", err)
	}
	tests := []struct {
		name   string
		header string
		want   error
	}{
		{"wrong password", answer(t, "alice", "nope", 1), ErrAuthFailed},
		{"unknown user", answer(t, "mallory", "s3cret", 1), ErrAuthFailed},
		{"wrong method", answer(t, "alice", "s3cret", 1), ErrAuthFailed},
		{"garbage", "Basic abc", ErrAuthFailed},
	}
	for _, tc := range tests {
		method := "REGISTER"
		if tc.name == "wrong method" {
			method = "INVITE"
		}
		if _, err := v.Verify(tc.header, method); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	old := answer(t, "alice", "s3cret", 1)
	now = now.Add(2 * time.Minute)
	if _, err := v.Verify(old, "REGISTER"); !errors.Is(err, ErrStaleNonce) {
		t.Fatalf("expired nonce: err = %v, want ErrStaleNonce", err)
	}
	if _, err := v.Verify(answer(t, "alice", "wrong", 1), "REGISTER"); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("fresh nonce wrong password: %v", err)
	}
}

// The nonce-count table keeps only live nonces: after a storm of successful
// registrations and a nonce lifetime, it shrinks back.
func TestVerifierForgetsExpiredNonces(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	v := NewVerifier("baton", time.Minute, func() time.Time { return now }, func(string) (string, bool) { return HA1("alice", "baton", "pw"), true })
	register := func() {
		t.Helper()
		chal, err := digest.ParseChallenge(v.Challenge(false))
		if err != nil {
			t.Fatal(err)
		}
		cred, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: "sip:baton", Username: "alice", Password: "pw", Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(cred.String(), "REGISTER"); err != nil {
			t.Fatal(err)
		}
	}
	for range 1000 {
		register()
	}
	now = now.Add(2 * time.Minute)
	for range 100 {
		register()
	}
	v.mu.Lock()
	size := len(v.nc)
	v.mu.Unlock()
	if size > 200 {
		t.Fatalf("nonce-count table holds %d entries after the first 1000 nonces expired, want only the live ~100", size)
	}
}
