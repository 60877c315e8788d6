package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/zaf/g711"
)

// TestCommittedTablesUpToDate runs the generator into a temporary file and
// compares it byte for byte with the committed codecs/g711_tables.go, so a
// stale or hand-edited table (or a zaf/g711 upgrade that changes output)
// fails the build until `go generate ./codecs/...` is rerun.
func TestCommittedTablesUpToDate(t *testing.T) {
	t.Parallel()
	tmp := filepath.Join(t.TempDir(), "g711_tables.go")
	if err := run(tmp); err != nil {
		t.Fatalf("run: %v", err)
	}
	got, err := os.ReadFile(tmp)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("..", "..", "g711_tables.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("codecs/g711_tables.go is stale (%d bytes committed, %d generated); run `go generate ./codecs/...`", len(want), len(got))
	}
}

// TestExactShiftRejectsWiderShift checks the generator's exactness check can
// say no: the μ-law encoder depends on bit 2, so shift 3 must be refused.
func TestExactShiftRejectsWiderShift(t *testing.T) {
	t.Parallel()
	laws := map[string]struct {
		encode func(int16) uint8
		want   int
	}{
		"ulaw": {encode: g711.EncodeUlawFrame, want: 2},
		"alaw": {encode: g711.EncodeAlawFrame, want: 4},
	}
	for name, tc := range laws {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, ok := exactShift(tc.encode)
			if !ok || got != tc.want {
				t.Fatalf("exactShift = %d, %v; want %d, true", got, ok, tc.want)
			}
			if isExact(tc.encode, tc.want+1) {
				t.Fatalf("isExact(shift %d) = true; the encoder uses bit %d", tc.want+1, tc.want)
			}
		})
	}
}
