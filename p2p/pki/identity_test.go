package pki

import (
	"crypto/x509"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestParseIdentity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		s       string
		want    Identity
		wantErr bool
	}{
		{"simple", "alice/laptop", Identity{User: "alice", Device: "laptop"}, false},
		{"all allowed characters", "a.b_c-9/0d.e_f-z", Identity{User: "a.b_c-9", Device: "0d.e_f-z"}, false},
		{"max lengths", strings.Repeat("u", 64) + "/" + strings.Repeat("d", 64),
			Identity{User: strings.Repeat("u", 64), Device: strings.Repeat("d", 64)}, false},
		{"empty", "", Identity{}, true},
		{"no slash", "alice", Identity{}, true},
		{"empty user", "/laptop", Identity{}, true},
		{"empty device", "alice/", Identity{}, true},
		{"only a slash", "/", Identity{}, true},
		{"two slashes", "alice/laptop/x", Identity{}, true},
		{"upper case user", "Alice/laptop", Identity{}, true},
		{"upper case device", "alice/Laptop", Identity{}, true},
		{"user too long", strings.Repeat("u", 65) + "/d", Identity{}, true},
		{"device too long", "u/" + strings.Repeat("d", 65), Identity{}, true},
		{"leading dot", ".alice/laptop", Identity{}, true},
		{"leading dash in device", "alice/-laptop", Identity{}, true},
		{"space", "alice /laptop", Identity{}, true},
		{"at sign", "alice@example.com/laptop", Identity{}, true},
		{"colon", "baton:alice/laptop", Identity{}, true},
		{"non-ASCII", "alicé/laptop", Identity{}, true},
		{"NUL", "alice\x00/laptop", Identity{}, true},
		{"percent-encoded", "alice%2f/laptop", Identity{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseIdentity(tt.s)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidIdentity) {
					t.Fatalf("ParseIdentity(%q) error = %v, want ErrInvalidIdentity", tt.s, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseIdentity(%q): %v", tt.s, err)
			}
			if got != tt.want {
				t.Errorf("ParseIdentity(%q) = %+v, want %+v", tt.s, got, tt.want)
			}
			if got.String() != tt.s {
				t.Errorf("String() = %q, want %q", got.String(), tt.s)
			}
		})
	}
}

func TestIdentityValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		id      Identity
		wantErr string // substring naming the bad part; "" = valid
	}{
		{"valid", Identity{User: "bob", Device: "mobile"}, ""},
		{"zero", Identity{}, "user"},
		{"bad user", Identity{User: "Bob", Device: "mobile"}, "user"},
		{"bad device", Identity{User: "bob", Device: "mo/bile"}, "device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.id.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidIdentity) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want ErrInvalidIdentity naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestIdentityIsZeroAndString(t *testing.T) {
	t.Parallel()
	if !(Identity{}).IsZero() {
		t.Error("Identity{}.IsZero() = false")
	}
	for _, id := range []Identity{{User: "a"}, {Device: "b"}, {User: "a", Device: "b"}} {
		if id.IsZero() {
			t.Errorf("%+v.IsZero() = true", id)
		}
	}
	if got := (Identity{User: "alice", Device: "desk"}).String(); got != "alice/desk" {
		t.Errorf("String() = %q", got)
	}
	if got := (Identity{User: "alice", Device: "desk"}).uri().String(); got != "baton:alice/desk" {
		t.Errorf("uri() = %q, want baton:alice/desk", got)
	}
}

func TestIdentityFromCert(t *testing.T) {
	t.Parallel()
	mustURL := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	tests := []struct {
		name    string
		uris    []string
		want    Identity
		wantErr error
	}{
		{"baton URI", []string{"baton:alice/laptop"}, Identity{User: "alice", Device: "laptop"}, nil},
		{"other URIs first", []string{"https://example.com/x", "spiffe://x/y", "baton:bob/desk"}, Identity{User: "bob", Device: "desk"}, nil},
		{"upper-case scheme", []string{"BATON:bob/desk"}, Identity{User: "bob", Device: "desk"}, nil},
		{"no URI", nil, Identity{}, ErrNoIdentity},
		{"only other schemes", []string{"https://alice/laptop"}, Identity{}, ErrNoIdentity},
		{"hierarchical form", []string{"baton://alice/laptop"}, Identity{}, ErrInvalidIdentity},
		{"bad names", []string{"baton:Alice/laptop"}, Identity{}, ErrInvalidIdentity},
		{"missing device", []string{"baton:alice"}, Identity{}, ErrInvalidIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &x509.Certificate{}
			for _, s := range tt.uris {
				c.URIs = append(c.URIs, mustURL(s))
			}
			got, err := IdentityFromCert(c)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("IdentityFromCert error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("IdentityFromCert: %v", err)
			}
			if got != tt.want {
				t.Errorf("IdentityFromCert = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzParseIdentity: never panics; success means a valid identity whose
// String() is exactly the input; failure is ErrInvalidIdentity.
func FuzzParseIdentity(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseIdentity(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidIdentity) {
				t.Fatalf("ParseIdentity(%q) error %v is not ErrInvalidIdentity", s, err)
			}
			return
		}
		if id.String() != s {
			t.Fatalf("ParseIdentity(%q).String() = %q", s, id.String())
		}
		if err := id.Validate(); err != nil {
			t.Fatalf("ParseIdentity(%q) accepted an invalid identity: %v", s, err)
		}
		if id.IsZero() {
			t.Fatalf("ParseIdentity(%q) returned the zero identity", s)
		}
		// The URI SAN form parses back to the same identity.
		u, err := url.Parse(id.uri().String())
		if err != nil {
			t.Fatalf("uri %q does not parse: %v", id.uri(), err)
		}
		back, err := IdentityFromCert(&x509.Certificate{URIs: []*url.URL{u}})
		if err != nil || back != id {
			t.Fatalf("URI SAN round trip of %q = %+v, %v", s, back, err)
		}
	})
}
