package pki

import (
	"errors"
	"testing"
	"time"
)

// TestVerifyCacheSameAnswers: through the cache, every (chain, roots,
// time) gets VerifyEndpoint's answer, on the first call and on the calls
// after it, whatever was cached before.
func TestVerifyCacheSameAnswers(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	forger := newTestCA(t)
	good := issue(t, ca, alice, testNow, time.Hour)
	forged := issue(t, forger, alice, testNow, time.Hour)
	pool, forgerPool := ca.Pool(), forger.Pool()
	c := NewVerifyCache(8)
	// The steps share one cache, in order: what an earlier step cached
	// must not change a later step's answer.
	steps := []struct {
		name  string
		chain [][]byte
		roots string
		at    time.Time
	}{
		{"valid", [][]byte{good.der}, "ca", testNow},
		{"valid again (cached)", [][]byte{good.der}, "ca", testNow.Add(time.Minute)},
		{"not yet valid", [][]byte{good.der}, "ca", testNow.Add(-time.Hour)},
		{"expired", [][]byte{good.der}, "ca", testNow.Add(2 * time.Hour)},
		{"valid after the misses", [][]byte{good.der}, "ca", testNow.Add(30 * time.Minute)},
		{"another pool does not trust it", [][]byte{good.der}, "forger", testNow},
		{"forged", [][]byte{forged.der}, "ca", testNow},
		{"forged again", [][]byte{forged.der}, "ca", testNow},
		{"forged, its own pool", [][]byte{forged.der}, "forger", testNow},
		{"with a trailing junk certificate", [][]byte{good.der, {1, 2, 3}}, "ca", testNow},
		{"empty", nil, "ca", testNow},
	}
	for _, st := range steps {
		roots := pool
		if st.roots == "forger" {
			roots = forgerPool
		}
		wantID, wantLeaf, wantErr := VerifyEndpoint(st.chain, roots, st.at)
		for round := range 2 {
			id, leaf, err := c.Verify(st.chain, roots, st.at)
			if (err == nil) != (wantErr == nil) || (err != nil && !errors.Is(err, ErrUntrusted)) {
				t.Fatalf("%s (round %d): err %v, VerifyEndpoint says %v", st.name, round, err, wantErr)
			}
			if id != wantID || (leaf == nil) != (wantLeaf == nil) || (leaf != nil && !leaf.Equal(wantLeaf)) {
				t.Fatalf("%s (round %d): %v %v, VerifyEndpoint says %v", st.name, round, id, leaf != nil, wantID)
			}
		}
	}
	// Only what verified is cached: the good chain under the CA's pool,
	// the forged one under its forger's.
	if n := len(c.m); n != 2 {
		t.Errorf("cache holds %d chains, want 2", n)
	}
}

// TestVerifyCacheBounded: the cache never holds more than its max.
func TestVerifyCacheBounded(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	pool := ca.Pool()
	c := NewVerifyCache(2)
	for i := range 5 {
		e := issue(t, ca, Identity{User: "u", Device: string(rune('a' + i))}, testNow, time.Hour)
		if _, _, err := c.Verify([][]byte{e.der}, pool, testNow); err != nil {
			t.Fatal(err)
		}
		if len(c.m) > 2 {
			t.Fatalf("after %d chains the cache holds %d, max 2", i+1, len(c.m))
		}
	}
}

func BenchmarkVerifyCache(b *testing.B) {
	ca := newTestCA(b)
	e := issue(b, ca, alice, testNow, time.Hour)
	pool := ca.Pool()
	c := NewVerifyCache(8)
	chain := [][]byte{e.der}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.Verify(chain, pool, testNow); err != nil {
			b.Fatal(err)
		}
	}
}
