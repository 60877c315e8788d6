package plugins

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/handoff"
)

// benchDecide runs b.N decisions of p one after the other and reports the
// p50 and p99 latency of one Decide next to the mean.
func benchDecide(b *testing.B, p handoff.Policy) {
	req := handoff.Request{Kind: handoff.KindPull, Requester: "alice/laptop", Owner: "alice/desk", CallID: "c-1", Peer: "bob/mobile"}
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		d, err := p.Decide(ctx, req)
		lat = append(lat, time.Since(t0))
		if err != nil || !d.Allow {
			b.Fatalf("Decide = %+v, %v; want allow", d, err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-us")
}

// BenchmarkPolicyDecide compares the built-in same-user policy with the
// policy-rules plugin (one gRPC call to another process per decision),
// side by side in one run:
//
//	go test -run '^$' -bench PolicyDecide -benchtime 20000x ./plugins
func BenchmarkPolicyDecide(b *testing.B) {
	b.Run("in-process-same-user", func(b *testing.B) { benchDecide(b, handoff.SameUser{}) })
	b.Run("plugin-policy-rules", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "rules.yaml")
		writeFile(b, path, "default: deny\nrules:\n  - {kind: query, action: deny}\n  - {same_user: true, action: allow}\n")
		c, err := NewPolicyClient(context.Background(), PolicyConfig{Config: Config{Path: builds.Bin(b, pkgRules), Args: []string{"-rules", path}}})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		benchDecide(b, c)
	})
}

// BenchmarkPluginStart measures a policy plugin's start (fork, exec,
// checksum, handshake, mTLS, describe) and stop:
//
//	go test -run '^$' -bench PluginStart -benchtime 20x ./plugins
func BenchmarkPluginStart(b *testing.B) {
	path := filepath.Join(b.TempDir(), "rules.yaml")
	writeFile(b, path, "rules:\n  - {same_user: true, action: allow}\n")
	bin := builds.Bin(b, pkgRules)
	for b.Loop() {
		c, err := NewPolicyClient(context.Background(), PolicyConfig{Config: Config{Path: bin, Args: []string{"-rules", path}}})
		if err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
	}
}
