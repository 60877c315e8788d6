package pki

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
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
		{"with a junk intermediate", [][]byte{good.der, forged.der}, "ca", testNow},
		{"with a junk intermediate, expired", [][]byte{good.der, forged.der}, "ca", testNow.Add(2 * time.Hour)},
		{"with a junk intermediate, another pool", [][]byte{good.der, forged.der}, "forger", testNow},
		{"valid after the junk", [][]byte{good.der}, "ca", testNow},
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

// TestVerifyCacheJunkIntermediates: a peer that presents its good leaf
// with a different junk certificate on every connection is accepted each
// time, but makes no new entry: the cache stays at one entry per leaf and
// the entries of other peers are not evicted (issue 11 §3). Before the
// key was the leaf, every junk certificate made a new key, and a full
// cache evicted the good entries for them.
func TestVerifyCacheJunkIntermediates(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	forger := newTestCA(t)
	pool := ca.Pool()
	c := NewVerifyCache(8)
	var good []*endpoint
	for _, dev := range []string{"a", "b", "c"} {
		e := issue(t, ca, Identity{User: "bob", Device: dev}, testNow, time.Hour)
		if _, _, err := c.Verify([][]byte{e.der}, pool, testNow); err != nil {
			t.Fatal(err)
		}
		good = append(good, e)
	}
	peer := issue(t, ca, alice, testNow, time.Hour)
	for i := range 40 {
		junk := issue(t, forger, Identity{User: "junk", Device: string(rune('a' + i%26))}, testNow, time.Hour)
		id, _, err := c.Verify([][]byte{peer.der, junk.der}, pool, testNow)
		if err != nil || id != alice {
			t.Fatalf("junk %d: %v %v", i, id, err)
		}
		if n := c.Len(); n > len(good)+1 {
			t.Fatalf("after %d junk intermediates the cache holds %d chains, want at most %d (one per leaf)", i+1, n, len(good)+1)
		}
	}
	for _, e := range good {
		if _, ok := c.m[verifyKey{roots: pool, leaf: sha256.Sum256(e.der)}]; !ok {
			t.Errorf("the entry of %s was evicted by the junk", e.id)
		}
	}
}

// TestVerifyCacheIntermediateChain: under a root that allows
// intermediates, an entry is served only when the peer presents the
// intermediate of the chain that verified (without it VerifyEndpoint
// fails, and so must the cache), and a junk certificate beside it does
// not stop the hit from being exact (VerifyEndpoint's answer).
func TestVerifyCacheIntermediateChain(t *testing.T) {
	t.Parallel()
	rootKey, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	rootTmpl := &x509.Certificate{
		Subject: pkix.Name{CommonName: "root"}, NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	rootDER := signRaw(t, rootTmpl, rootTmpl, rootKey, &rootKey.PublicKey)
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}
	interKey, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	interDER := signRaw(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "inter"}, NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(2 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, root, rootKey, &interKey.PublicKey)
	inter, err := x509.ParseCertificate(interDER)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("baton:alice/laptop")
	leafDER := signRaw(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "leaf"}, NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(3 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, URIs: []*url.URL{u},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}, inter, interKey, &leafKey.PublicKey)
	junk := issue(t, newTestCA(t), alice, testNow, time.Hour)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	c := NewVerifyCache(8)
	for _, st := range []struct {
		name  string
		chain [][]byte
		at    time.Time
	}{
		{"leaf and intermediate", [][]byte{leafDER, interDER}, testNow},
		{"leaf and intermediate again (cached)", [][]byte{leafDER, interDER}, testNow},
		{"leaf without its intermediate", [][]byte{leafDER}, testNow},
		{"leaf with junk instead of its intermediate", [][]byte{leafDER, junk.der}, testNow},
		{"leaf, intermediate and junk", [][]byte{leafDER, junk.der, interDER}, testNow},
		{"leaf, intermediate and the root", [][]byte{leafDER, interDER, rootDER}, testNow},
		{"past the intermediate's expiry", [][]byte{leafDER, interDER}, testNow.Add(150 * time.Minute)},
		{"leaf and intermediate after the misses", [][]byte{leafDER, interDER}, testNow},
	} {
		wantID, _, wantErr := VerifyEndpoint(st.chain, pool, st.at)
		for round := range 2 {
			id, _, err := c.Verify(st.chain, pool, st.at)
			if (err == nil) != (wantErr == nil) || id != wantID {
				t.Fatalf("%s (round %d): %v %v, VerifyEndpoint says %v %v", st.name, round, id, err, wantID, wantErr)
			}
		}
	}
	if n := c.Len(); n != 1 {
		t.Errorf("cache holds %d chains, want 1 (one leaf)", n)
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
