package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// TestServePprof: --pprof serves the profiles on a loopback address and
// refuses any other, naming it.
func TestServePprof(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, bad := range []string{"0.0.0.0:6060", ":6060", "192.0.2.1:6060", "localhost:6060", "6060"} {
		if _, _, err := servePprof(context.Background(), bad, log); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("--pprof %q: err %v, want a refusal naming it", bad, err)
		}
	}
	addr, stop, err := servePprof(context.Background(), "127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	res, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("pprof goroutine: %s\n%.200s", res.Status, body)
	}
}
