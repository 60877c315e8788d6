package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// manyAccounts is a gateway config with n SIP accounts of SIP-only
// users behind a gateway credential (issue 8 §7's 10,000 phones).
func manyAccounts(n int, badHA1At int) []byte {
	var b strings.Builder
	b.WriteString("ca: ca.crt\ncredential: {gateway: gw1, secret_file: gw1.secret}\naccounts:\n")
	for i := range n {
		ha1 := fmt.Sprintf("%032x", i)
		if i == badHA1At {
			ha1 = "not-hex"
		}
		fmt.Fprintf(&b, "  - {sip_user: u%05d, ha1: %q, device: u%05d/desk}\n", i, ha1, i)
	}
	return []byte(b.String())
}

// The gateway's YAML carries 10,000 accounts: they load (the time is
// logged, not asserted; about 0.5 s on the 2-core machine), and a bad one
// among them is named by its index.
func TestLoadGatewayTenThousandAccounts(t *testing.T) {
	t.Parallel()
	src := Source{File: "gateway.yaml", Env: []string{}}
	t0 := time.Now()
	g, err := loadBytes(gatewaySpec(), src, manyAccounts(10000, -1))
	t.Logf("10,000 accounts loaded in %v", time.Since(t0))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Accounts) != 10000 || g.Accounts[9999].SIPUser != "u09999" || g.Accounts[9999].Device != "u09999/desk" {
		t.Fatalf("got %d accounts, last %+v", len(g.Accounts), g.Accounts[len(g.Accounts)-1])
	}
	_, err = loadBytes(gatewaySpec(), src, manyAccounts(10000, 9876))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "accounts[9876].ha1") {
		t.Fatalf("a bad HA1 among 10,000: %v", err)
	}
}

func BenchmarkLoadGatewayTenThousandAccounts(b *testing.B) {
	data := manyAccounts(10000, -1)
	src := Source{File: "gateway.yaml", Env: []string{}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := loadBytes(gatewaySpec(), src, data); err != nil {
			b.Fatal(err)
		}
	}
}
