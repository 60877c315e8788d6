package pki

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestIssueBridged: a bridged device's certificate binds the same identity
// as an endpoint's, verifies the same way, and also names its gateway; an
// ordinary endpoint's names none.
func TestIssueBridged(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	now := testNow
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	id := Identity{User: "alice", Device: "desk"}
	der, _, err := ca.IssueBridged(&key.PublicKey, id, "gw1", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got, leaf, err := VerifyEndpoint([][]byte{der}, ca.Pool(), now)
	if err != nil || got != id {
		t.Fatalf("VerifyEndpoint = %v, %v; want %v", got, err, id)
	}
	if by := BridgedBy(leaf); by != "gw1" {
		t.Fatalf("BridgedBy = %q, want gw1", by)
	}
	if ou := strings.Join(leaf.Subject.OrganizationalUnit, ","); !strings.Contains(ou, "via gateway gw1") {
		t.Errorf("subject OU %q does not say bridged", ou)
	}
	plain := issue(t, ca, Identity{User: "bob", Device: "laptop"}, now, time.Hour)
	if by := BridgedBy(plain.cert); by != "" {
		t.Fatalf("an endpoint certificate says bridged by %q", by)
	}
	if BridgedBy(nil) != "" || BridgedBy(&x509.Certificate{}) != "" {
		t.Fatal("no certificate says bridged")
	}
	if _, _, err := ca.IssueBridged(&key.PublicKey, id, "GW 1", now, time.Hour); !errors.Is(err, ErrInvalidIdentity) {
		t.Fatalf("invalid gateway name: %v", err)
	}
}
