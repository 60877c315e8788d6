package main

// Helpers for the end-to-end tests (e2e_*_test.go): they build the real
// baton binary once, run it as separate processes on loopback, drive the
// phones through `baton ctl` and read what the processes print, exactly as
// a person following docs/operations.md would.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/audio"
)

// Generous bounds for a loaded 2-core machine running -race. They bound
// waiting, never measure speed.
const (
	// runTimeout bounds a short-lived command (user add, ctl calls...).
	runTimeout = 60 * time.Second
	// readyTimeout bounds waiting for a long-running process to print its
	// ready line.
	readyTimeout = 30 * time.Second
	// pollTimeout bounds waiting for a state to show up through ctl.
	pollTimeout = 30 * time.Second
	// stopGrace is how long a process may take to exit after SIGINT before
	// it is killed.
	stopGrace = 10 * time.Second
)

// e2e holds the binary that TestMain's build produced. It is written once
// (under once) and read by every test after that.
var e2e struct {
	once sync.Once
	dir  string // temporary directory holding the binary, removed by TestMain
	bin  string
	err  error
}

// TestMain removes the binary built for the end-to-end tests once every
// test has run. The binary itself is built on first use (batonBin), so a
// run that selects only unit tests does not pay for the build.
func TestMain(m *testing.M) {
	code := m.Run()
	if e2e.dir != "" {
		_ = os.RemoveAll(e2e.dir)
	}
	os.Exit(code)
}

// batonBin returns the path of the baton binary, building it (once per test
// binary) from the module root with `go build -o DIR/baton ./cmd/baton`.
func batonBin(t *testing.T) string {
	t.Helper()
	e2e.once.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			e2e.err = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			e2e.err = errors.New("go env GOMOD: not inside a module")
			return
		}
		dir, err := os.MkdirTemp("", "baton-e2e-")
		if err != nil {
			e2e.err = err
			return
		}
		e2e.dir = dir
		bin := filepath.Join(dir, "baton")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/baton")
		build.Dir = filepath.Dir(gomod)
		if out, err := build.CombinedOutput(); err != nil {
			e2e.err = fmt.Errorf("go build ./cmd/baton: %w\n%s", err, out)
			return
		}
		e2e.bin = bin
	})
	if e2e.err != nil {
		t.Fatalf("building the baton binary: %v", e2e.err)
	}
	return e2e.bin
}

// childEnv is the environment of every baton process: ours without BATON_*
// variables, so a developer's settings cannot change what a test sees.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BATON_") {
			env = append(env, kv)
		}
	}
	return env
}

// syncBuffer is a bytes.Buffer safe for the exec copier goroutine and the
// test reading it at the same time.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// result is what a finished command left behind.
type result struct {
	args   []string
	stdout string
	stderr string
	code   int // exit status; -1 if it did not exit normally
}

func (r result) String() string {
	return fmt.Sprintf("$ baton %s\n-> exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// baton runs the binary to completion in dir, with stdin as its standard
// input (may be ""), and returns what it printed and its exit status.
func baton(t *testing.T, dir, stdin string, args ...string) result {
	t.Helper()
	return batonEnv(t, dir, stdin, nil, args...)
}

// batonEnv is baton with extra environment variables ("KEY=value").
func batonEnv(t *testing.T, dir, stdin string, env []string, args ...string) result {
	t.Helper()
	return batonIn(t, nil, dir, stdin, env, args...)
}

// batonIn is batonEnv run through wrap (e.g. ip netns exec NS), when set.
func batonIn(t *testing.T, wrap []string, dir, stdin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	argv := append(append(append([]string(nil), wrap...), batonBin(t)), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(childEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String(), code: -1}
	var ee *exec.ExitError
	switch {
	case err == nil:
		r.code = 0
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("baton %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("baton %s did not finish within %s\n%s", strings.Join(args, " "), runTimeout, r)
	}
	return r
}

// mustBaton is baton that fails the test unless the command exits 0.
func mustBaton(t *testing.T, dir string, args ...string) result {
	t.Helper()
	r := baton(t, dir, "", args...)
	if r.code != 0 {
		t.Fatalf("command failed:\n%s", r)
	}
	return r
}

// failBaton is baton that fails the test unless the command exits non-zero
// with every one of want in its standard error.
func failBaton(t *testing.T, dir string, want []string, args ...string) result {
	t.Helper()
	return failBatonEnv(t, dir, nil, want, args...)
}

// failBatonEnv is failBaton with extra environment variables.
func failBatonEnv(t *testing.T, dir string, env, want []string, args ...string) result {
	t.Helper()
	r := batonEnv(t, dir, "", env, args...)
	if r.code == 0 {
		t.Fatalf("command succeeded, want a failure mentioning %q:\n%s", want, r)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not mention %q:\n%s", w, r)
		}
	}
	return r
}

// proc is a long-running baton process (access server, phone, ctl events).
type proc struct {
	name   string
	args   []string
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{} // closed when the process has exited
	state  *os.ProcessState
}

// start runs baton in the background in dir. The process is stopped in
// t.Cleanup (SIGINT, then SIGKILL after stopGrace), and its output is logged
// if the test failed.
func start(t *testing.T, name, dir string, args ...string) *proc {
	t.Helper()
	return startIn(t, nil, nil, name, dir, args...)
}

// startIn is start run through wrap (e.g. ip netns exec NS, which execs
// baton itself, so signals reach it) with extra environment variables.
func startIn(t *testing.T, wrap, env []string, name, dir string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, args: args, done: make(chan struct{})}
	argv := append(append(append([]string(nil), wrap...), batonBin(t)), args...)
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = dir
	p.cmd.Env = append(childEnv(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.state = p.cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("--- %s: baton %s\n--- stdout:\n%s--- stderr:\n%s", p.name, strings.Join(p.args, " "), p.stdout.String(), p.stderr.String())
		}
	})
	return p
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop interrupts the process (as Ctrl-C would), kills it if it has not
// exited after stopGrace, and returns its exit status (-1: killed by a
// signal). Stopping a stopped process just returns its status again.
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	if !p.exited() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			t.Errorf("%s did not exit within %s of SIGINT; killing it", p.name, stopGrace)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	return p.state.ExitCode()
}

// waitStdout waits until the process's standard output matches re and
// returns the submatches of the first match. It fails the test if the
// process exits first or nothing matches in time.
func (p *proc) waitStdout(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		if m := re.FindStringSubmatch(p.stdout.String()); m != nil {
			return m
		}
		if p.exited() {
			t.Fatalf("%s exited (status %d) before printing %q\nstdout:\n%s\nstderr:\n%s",
				p.name, p.state.ExitCode(), re, p.stdout.String(), p.stderr.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s printed nothing matching %q within %s", p.name, re, readyTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	accessReady = regexp.MustCompile(`access server on (\S+); endpoints trust (\S+) \(sha256 ([0-9a-f]{64})\)`)
	phoneReady  = regexp.MustCompile(`phone (\S+) ready: signaling (\S+), admin (\S+)`)
)

// accessServer is a running `baton access`.
type accessServer struct {
	*proc
	addr string // login/presence address
	ca   string // path of ca.crt as printed
	fp   string // CA certificate SHA-256, as printed
}

// startAccess starts `baton access` on listen (port 0 for a free one) with
// its data in dataDir, and waits for its ready line.
func startAccess(t *testing.T, name, dir, dataDir, listen string) *accessServer {
	t.Helper()
	p := start(t, name, dir, "access", "--data-dir", dataDir, "--listen", listen)
	m := p.waitStdout(t, accessReady)
	return &accessServer{proc: p, addr: m[1], ca: m[2], fp: m[3]}
}

// phone is a running `baton phone`.
type phone struct {
	*proc
	id     string // user/device
	signal string
	admin  string // control API address, for ctl --admin
}

// phoneOpts are the flags of one phone beyond the login ones.
type phoneOpts struct {
	tone       int
	record     string
	autoAnswer bool
	maxCalls   int // --max-calls; 0 keeps the default (1)
}

// startPhone starts `baton phone` for user/device against srv, with the
// password in pwFile and the control API on a free port, and waits for its
// ready line.
func startPhone(t *testing.T, dir string, srv *accessServer, user, device, pwFile string, o phoneOpts) *phone {
	t.Helper()
	args := []string{"phone", "--access", srv.addr, "--ca", srv.ca, "--user", user, "--device", device,
		"--password-file", pwFile, "--admin", "127.0.0.1:0"}
	if o.tone != 0 {
		args = append(args, "--tone", strconv.Itoa(o.tone))
	}
	if o.record != "" {
		args = append(args, "--record", o.record)
	}
	if o.autoAnswer {
		args = append(args, "--auto-answer")
	}
	if o.maxCalls != 0 {
		args = append(args, "--max-calls", strconv.Itoa(o.maxCalls))
	}
	p := start(t, user+"/"+device, dir, args...)
	m := p.waitStdout(t, phoneReady)
	if m[1] != user+"/"+device {
		t.Fatalf("phone printed identity %q, want %s/%s", m[1], user, device)
	}
	return &phone{proc: p, id: m[1], signal: m[2], admin: m[3]}
}

// ctl runs `baton ctl --admin ADMIN args...` and returns the result.
func ctl(t *testing.T, dir, admin string, args ...string) result {
	t.Helper()
	return baton(t, dir, "", append([]string{"ctl", "--admin", admin}, args...)...)
}

// mustCtl is ctl that fails the test unless the command exits 0.
func mustCtl(t *testing.T, dir, admin string, args ...string) result {
	t.Helper()
	r := ctl(t, dir, admin, args...)
	if r.code != 0 {
		t.Fatalf("ctl failed:\n%s", r)
	}
	return r
}

// table parses the aligned tables `baton ctl calls|buddies|call` print: a
// header line whose column names (which may hold single spaces, as
// "REMOTE MEDIA") are separated by at least two spaces, then one row a line.
// Each row becomes a map from column name to trimmed cell.
func table(t *testing.T, out string) []map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || lines[0] == "no calls" || lines[0] == "no buddies" || lines[0] == "no sessions" {
		return nil
	}
	header := lines[0]
	locs := regexp.MustCompile(`\S+(?: \S+)*`).FindAllStringIndex(header, -1)
	if len(locs) < 2 {
		t.Fatalf("not a table header: %q\n%s", header, out)
	}
	var rows []map[string]string
	for _, line := range lines[1:] {
		row := map[string]string{}
		for i, loc := range locs {
			end := len(line)
			if i+1 < len(locs) {
				end = min(locs[i+1][0], len(line))
			}
			cell := ""
			if loc[0] < len(line) {
				cell = line[loc[0]:end]
			}
			row[header[loc[0]:loc[1]]] = strings.TrimSpace(cell)
		}
		rows = append(rows, row)
	}
	return rows
}

// callRow returns the row of call id in `ctl calls`, or nil.
func callRow(t *testing.T, dir, admin, id string) map[string]string {
	t.Helper()
	for _, row := range table(t, mustCtl(t, dir, admin, "calls").stdout) {
		if row["ID"] == id {
			return row
		}
	}
	return nil
}

// dial runs `ctl call TARGET` and returns the new call's ID.
func dial(t *testing.T, dir, admin, target string) string {
	t.Helper()
	r := mustCtl(t, dir, admin, "call", target)
	rows := table(t, r.stdout)
	if len(rows) != 1 || rows[0]["ID"] == "" || rows[0]["ID"] == "-" {
		t.Fatalf("ctl call %s printed no call:\n%s", target, r)
	}
	return rows[0]["ID"]
}

// eventually polls check (every 100ms, up to timeout) until it returns ok,
// and fails the test with the last explanation otherwise.
func eventually(t *testing.T, timeout time.Duration, what string, check func() (ok bool, last string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s; last seen:\n%s", timeout, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitCallState polls `ctl calls` at admin until call id is in state, and
// returns its row.
func waitCallState(t *testing.T, dir, admin, id, state string) map[string]string {
	t.Helper()
	var row map[string]string
	eventually(t, pollTimeout, fmt.Sprintf("call %s to be %s at %s", id, state, admin), func() (bool, string) {
		row = callRow(t, dir, admin, id)
		return row != nil && row["STATE"] == state, fmt.Sprint(row)
	})
	return row
}

// waitOnlineBuddy polls `ctl buddies` at admin until peer (user/device) is
// listed online.
func waitOnlineBuddy(t *testing.T, dir, admin, peer string) {
	t.Helper()
	eventually(t, pollTimeout, fmt.Sprintf("%s to show %s online", admin, peer), func() (bool, string) {
		out := mustCtl(t, dir, admin, "buddies").stdout
		for _, row := range table(t, out) {
			if strings.TrimSuffix(row["BUDDY"], " *") == peer && row["STATUS"] == "online" {
				return true, out
			}
		}
		return false, out
	})
}

// status runs `ctl status` and decodes its JSON.
func status(t *testing.T, dir, admin string) map[string]any {
	t.Helper()
	r := mustCtl(t, dir, admin, "status")
	var st map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("ctl status printed something that is not JSON: %v\n%s", err, r)
	}
	return st
}

var recvRE = regexp.MustCompile(`recv=(\d+)`)

// packetsReceived reads recv=N from a `ctl calls` row's INFO column.
func packetsReceived(t *testing.T, row map[string]string) uint64 {
	t.Helper()
	m := recvRE.FindStringSubmatch(row["INFO"])
	if m == nil {
		t.Fatalf("call row has no recv= counter: %v", row)
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// addUsers creates users (password NAME-secret in NAME.pw inside dir) with
// `baton user add --password-file` and returns the password files by name.
func addUsers(t *testing.T, dir, dataDir string, names ...string) map[string]string {
	t.Helper()
	pw := map[string]string{}
	for _, n := range names {
		pw[n] = writeFile(t, dir, n+".pw", n+"-secret\n")
		r := mustBaton(t, dir, "user", "add", n, "--data-dir", dataDir, "--password-file", pw[n])
		if want := "user " + n + " added"; !strings.Contains(r.stdout, want) {
			t.Fatalf("user add printed no %q:\n%s", want, r)
		}
	}
	return pw
}

// freeAddr returns a loopback address nothing listens on (a port that was
// free a moment ago: the race with other processes is accepted).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// toneCandidates are the frequencies a recording is classified against:
// the two tones the tests send plus neighbours, so that a wrong tone is
// not forced onto one of the two.
var toneCandidates = []float64{350, 440, 550, 660, 770, 880}

// checkHears asserts that the WAV recording at path holds at least minSound
// of sound and that at least 80% of its sounding 20 ms frames are hz.
func checkHears(t *testing.T, path string, hz float64, minSound time.Duration) {
	t.Helper()
	var clip *audio.Clip
	// The recording is finalised when the call ends; the caller waited for
	// that, but allow the file system a moment.
	eventually(t, 10*time.Second, "a readable recording "+path, func() (bool, string) {
		var err error
		clip, err = audio.ReadWAVFile(path)
		return err == nil, fmt.Sprint(err)
	})
	var sounding, match time.Duration
	for _, s := range audio.Segments(clip.Samples, clip.SampleRate, 0, toneCandidates) {
		if s.Silent() {
			continue
		}
		sounding += s.Duration()
		if math.Abs(s.Hz-hz) < 1 {
			match += s.Duration()
		}
	}
	if sounding < minSound {
		t.Fatalf("%s: %s of sound, want at least %s", path, sounding, minSound)
	}
	if share := float64(match) / float64(sounding); share < 0.8 {
		t.Errorf("%s: %.0f Hz in %.0f%% of %s of sound, want at least 80%%", path, hz, share*100, sounding)
	}
}
