// Package plugintest helps tests run real plugin binaries: it builds a
// plugin's main package with `go build` once per test binary.
//
//	var builds plugintest.Builds
//
//	func TestMain(m *testing.M) { code := m.Run(); builds.Cleanup(); os.Exit(code) }
//
//	func TestMyPlugin(t *testing.T) {
//		bin := builds.Bin(t, "github.com/me/myplugin/cmd/myplugin")
//		...
//	}
package plugintest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Builds holds the binaries built by one test binary. The zero value is
// ready; Cleanup removes them.
type Builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]*build
}

type build struct {
	once sync.Once
	bin  string
	err  error
}

// Bin returns the path of pkg's binary (a main package import path),
// building it on first use. The build runs in the module of the current
// directory.
func (b *Builds) Bin(t testing.TB, pkg string) string {
	t.Helper()
	b.mu.Lock()
	if b.bins == nil {
		b.bins = make(map[string]*build)
	}
	if b.dir == "" {
		d, err := os.MkdirTemp("", "baton-plugintest-")
		if err != nil {
			b.mu.Unlock()
			t.Fatalf("plugintest: %v", err)
		}
		b.dir = d
	}
	bd := b.bins[pkg]
	if bd == nil {
		bd = &build{}
		b.bins[pkg] = bd
	}
	dir := b.dir
	b.mu.Unlock()
	bd.once.Do(func() {
		out := filepath.Join(dir, path.Base(pkg))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		if msg, err := cmd.CombinedOutput(); err != nil {
			bd.err = fmt.Errorf("go build %s: %w\n%s", pkg, err, msg)
			return
		}
		bd.bin = out
	})
	if bd.err != nil {
		t.Fatalf("plugintest: %v", bd.err)
	}
	return bd.bin
}

// Cleanup removes every binary built.
func (b *Builds) Cleanup() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
		b.dir = ""
	}
}
