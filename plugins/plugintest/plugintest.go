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
	"strconv"
	"strings"
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

// ProcessCPU returns the user+system CPU time a process has used so far,
// all its threads included, from /proc/PID/stat (Linux; clock-tick
// resolution, 10 ms on most systems: measure over seconds). pid 0 is this
// process. Benchmarks use it to charge a plugin's CPU to the host's work.
func ProcessCPU(pid int) (time.Duration, error) {
	p := "/proc/self/stat"
	if pid != 0 {
		p = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// fields are counted from the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("plugintest: %s: no ')' in %q", p, s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("plugintest: %s: %d fields", p, len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("plugintest: %s: bad utime/stime %q %q", p, f[11], f[12])
	}
	const clkTck = 100 // sysconf(_SC_CLK_TCK) is 100 on Linux
	return time.Duration(ut+st) * time.Second / clkTck, nil
}
