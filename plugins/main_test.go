package plugins

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-voice/baton/plugins/plugintest"
)

var builds plugintest.Builds

func TestMain(m *testing.M) {
	// A helper host for TestPluginKilledWithHost: this test binary
	// re-executed loads a plugin, prints its pid and waits to be killed.
	if os.Getenv("BATON_TEST_HELPER_HOST") != "" {
		helperHost()
		return
	}
	code := m.Run()
	builds.Cleanup()
	os.Exit(code)
}

const (
	pkgRules = "github.com/baton-voice/baton/plugins/cmd/policy-rules"
	pkgTest  = "github.com/baton-voice/baton/plugins/internal/testplugin"
	pkgRedis = "github.com/baton-voice/baton/plugins/cmd/presence-redis"
)

// wait bounds every wait in these tests; it never measures speed.
const wait = 30 * time.Second

// fastConfig is a Config with short supervision intervals, so tests see
// restarts quickly.
func fastConfig(t *testing.T, path string, args ...string) Config {
	t.Helper()
	return Config{
		Path: path, Args: args,
		StartTimeout:   wait,
		HealthInterval: 50 * time.Millisecond,
		HealthTimeout:  2 * time.Second,
		RestartMin:     20 * time.Millisecond,
		RestartMax:     200 * time.Millisecond,
		Logger:         testLogger(t),
	}
}

// logBuffer collects log records for assertions, and forwards them to
// t.Log while the test runs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(&tlogWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *tlogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		func() {
			defer func() { _ = recover() }() // logging after the test ended
			w.t.Log(strings.TrimRight(string(p), "\n"))
		}()
	}
	return len(p), nil
}

// eventually polls cond until it holds or wait passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}
