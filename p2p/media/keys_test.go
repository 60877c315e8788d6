package media

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestKeysRoundTrip(t *testing.T) {
	t.Parallel()
	k1, err := NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	if k1 == k2 {
		t.Fatal("two NewKeys calls returned the same keys")
	}
	b := k1.Bytes()
	if len(b) != KeysLen {
		t.Fatalf("Bytes() is %d bytes, want %d", len(b), KeysLen)
	}
	got, err := KeysFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != k1 {
		t.Fatal("KeysFromBytes(Bytes()) differs")
	}
	if !bytes.Equal(b[:16], k1.MasterKey[:]) || !bytes.Equal(b[16:], k1.MasterSalt[:]) {
		t.Fatal("Bytes() is not key || salt")
	}
}

func TestKeysFromBytesLength(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		n    int
	}{
		{name: "empty", n: 0},
		{name: "one short", n: 29},
		{name: "one long", n: 31},
		{name: "key only", n: 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := KeysFromBytes(make([]byte, tt.n))
			if !errors.Is(err, ErrInvalidKeys) {
				t.Fatalf("error %v, want ErrInvalidKeys", err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("got %d bytes", tt.n)) {
				t.Fatalf("error %q does not name the length %d", err, tt.n)
			}
		})
	}
}

func TestKeysNeverPrinted(t *testing.T) {
	t.Parallel()
	k, err := NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	secret := hex.EncodeToString(k.MasterKey[:])
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("keys", "keys", k, "ptr", &k)
	outputs := []string{
		fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %x", k, k, k, k, k), fmt.Sprintf("%v", &k), logged.String(),
	}
	for _, out := range outputs {
		if strings.Contains(out, secret) || strings.Contains(out, fmt.Sprint(k.MasterKey[0], " ", k.MasterKey[1])) {
			t.Fatalf("key material printed: %s", out)
		}
	}
}
