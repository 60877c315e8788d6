package handoff_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/p2p/handoff"
)

// TestDocUpToDate keeps docs/handoff.md equal to what the tables say and to
// the endpoint's handler of each action.
func TestDocUpToDate(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "docs", "handoff.md")
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("docs/handoff.md is stale: run go generate ./p2p/handoff (%v)", err)
	}
	if !bytes.Equal(got, handoff.Markdown(endpoint.HandoffHandlers())) {
		t.Fatal("docs/handoff.md is stale: run go generate ./p2p/handoff")
	}
}
