package plugins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/handoff"
)

const rulesYAML = `
default: deny
rules:
  - name: no pulls to premium numbers
    kind: pull
    peer: "sip:+1900*"
    action: deny
    reason: premium numbers stay put
  - name: assistant may query the boss
    kind: query
    requester: "carol/*"
    owner: "alice/*"
    action: allow
  - name: same user
    same_user: true
    action: allow
    reason: same user
`

func loadRules(t *testing.T, rules string, mode FailMode, timeout time.Duration) (*PolicyClient, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, path, rules)
	bin := builds.Bin(t, pkgRules)
	c, err := NewPolicyClient(context.Background(), PolicyConfig{
		Config:      fastConfig(t, bin, "-rules", path, "-reload", "20ms"),
		CallTimeout: timeout,
		FailMode:    mode,
	})
	if err != nil {
		t.Fatalf("NewPolicyClient: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, path
}

func TestPluginPolicyRulesDecide(t *testing.T) {
	t.Parallel()
	c, _ := loadRules(t, rulesYAML, FailDeny, 5*time.Second)
	for _, tc := range []struct {
		name   string
		req    handoff.Request
		allow  bool
		reason string
	}{
		{"same user pull", handoff.Request{Kind: handoff.KindPull, Requester: "alice/laptop", Owner: "alice/desk", Peer: "bob/desk"}, true, "same user"},
		{"same user pull to premium", handoff.Request{Kind: handoff.KindPull, Requester: "alice/laptop", Owner: "alice/desk", Peer: "sip:+19005551234@trunk"}, false, "premium numbers stay put"},
		{"assistant query", handoff.Request{Kind: handoff.KindQuery, Requester: "carol/desk", Owner: "alice/desk"}, true, "rule assistant may query the boss"},
		{"assistant pull", handoff.Request{Kind: handoff.KindPull, Requester: "carol/desk", Owner: "alice/desk", Peer: "bob/desk"}, false, "no rule matched; default deny"},
		{"stranger query", handoff.Request{Kind: handoff.KindQuery, Requester: "mallory/x", Owner: "alice/desk"}, false, "no rule matched; default deny"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := c.Decide(context.Background(), tc.req)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if d.Allow != tc.allow || d.Reason != tc.reason {
				t.Fatalf("Decide = %+v, want allow %v reason %q", d, tc.allow, tc.reason)
			}
		})
	}
	if desc := c.Supervisor().Description(); desc.Kind != KindPolicy || desc.ProtocolVersion != 1 || desc.Name != "policy-rules" {
		t.Fatalf("Description = %+v", desc)
	}
}

func TestPluginPolicyRulesReload(t *testing.T) {
	t.Parallel()
	c, path := loadRules(t, "rules: [{name: all, action: deny, reason: first}]\n", FailDeny, 5*time.Second)
	req := handoff.Request{Kind: handoff.KindQuery, Requester: "alice/a", Owner: "alice/b"}
	if d, _ := c.Decide(context.Background(), req); d.Allow || d.Reason != "first" {
		t.Fatalf("before reload Decide = %+v", d)
	}
	writeFile(t, path, "rules: [{name: all, action: allow, reason: second}]\n")
	eventually(t, "reloaded rules in force", func() bool {
		d, _ := c.Decide(context.Background(), req)
		return d.Allow && d.Reason == "second"
	})
	// A broken file keeps the last good rules.
	writeFile(t, path, "rules: [{name: all, action: maybe}]\n")
	time.Sleep(200 * time.Millisecond) // several reload periods
	if d, _ := c.Decide(context.Background(), req); !d.Allow || d.Reason != "second" {
		t.Fatalf("after a broken file Decide = %+v, want the last good rules", d)
	}
}

// decideBounded runs Decide and fails the test if it does not return well
// after the call deadline: a Decide without a working deadline would hang.
func decideBounded(t *testing.T, p handoff.Policy, req handoff.Request, deadline time.Duration) handoff.Decision {
	t.Helper()
	type res struct {
		d   handoff.Decision
		err error
	}
	ch := make(chan res, 1)
	go func() {
		d, err := p.Decide(context.Background(), req)
		ch <- res{d, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Decide error %v; a plugin client applies its fail mode instead", r.err)
		}
		return r.d
	case <-time.After(deadline + wait):
		t.Fatalf("Decide did not return within its deadline %v (+%v slack)", deadline, wait)
	}
	return handoff.Decision{}
}

func TestPluginPolicyKill9FailModeAndRestart(t *testing.T) {
	t.Parallel()
	const deadline = 300 * time.Millisecond
	c, _ := loadRules(t, rulesYAML, FailDeny, deadline)
	sup := c.Supervisor()
	req := handoff.Request{Kind: handoff.KindPull, Requester: "alice/laptop", Owner: "alice/desk", Peer: "bob/desk"}
	if d := decideBounded(t, c, req, deadline); !d.Allow {
		t.Fatalf("before kill: %+v, want allow", d)
	}
	pid := sup.PID()
	sockDir := sup.cur.sockDir
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	// Until it is back, requests get the fail mode (deny), never an error
	// or a hang. The first one after the kill must be refused: the process
	// is gone, so either the RPC fails or the client knows it is down.
	d := decideBounded(t, c, req, deadline)
	if d.Allow || !strings.Contains(d.Reason, "fail mode deny") {
		t.Fatalf("right after kill -9: %+v, want the deny fail mode", d)
	}
	eventually(t, "plugin restarted with a new pid", func() bool {
		return sup.Stats().Restarts >= 1 && sup.PID() != 0 && sup.PID() != pid
	})
	eventually(t, "decisions from the restarted plugin", func() bool {
		return decideBounded(t, c, req, deadline).Allow
	})
	if _, err := os.Stat(sockDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket dir of the killed plugin %s still exists (err %v)", sockDir, err)
	}
}

func TestPluginPolicyHungHitsDeadline(t *testing.T) {
	t.Parallel()
	bin := builds.Bin(t, pkgTest)
	req := handoff.Request{Kind: handoff.KindPull, Requester: "alice/laptop", Owner: "alice/desk"}
	for _, tc := range []struct {
		mode  FailMode
		allow bool
	}{
		{FailUnknown, false}, // the default is deny
		{FailDeny, false},
		{FailAllow, true},
		{FailSameUser, true},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			t.Parallel()
			const deadline = 200 * time.Millisecond
			c, err := NewPolicyClient(context.Background(), PolicyConfig{Config: fastConfig(t, bin, "-mode", "hang"), CallTimeout: deadline, FailMode: tc.mode})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			d := decideBounded(t, c, req, deadline)
			if d.Allow != tc.allow || !strings.Contains(d.Reason, "deadline") {
				t.Fatalf("hung plugin: %+v, want allow=%v with a deadline reason", d, tc.allow)
			}
			// A hung Decide is not a dead plugin: it is not restarted.
			if s := c.Supervisor().Stats(); s.Restarts != 0 {
				t.Fatalf("stats %+v: a plugin whose health checks pass was restarted", s)
			}
		})
	}
}

func TestPluginUnhealthyIsRestarted(t *testing.T) {
	t.Parallel()
	bin := builds.Bin(t, pkgTest)
	sup, err := Supervise(context.Background(), fastConfig(t, bin, "-mode", "unhealthy"), KindPolicy)
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	eventually(t, "unhealthy plugin restarted", func() bool { return sup.Stats().Restarts >= 2 })
	if s := sup.Stats(); s.HealthFails < 2 {
		t.Fatalf("stats %+v: want failed health checks", s)
	}
}

func TestPluginStartErrors(t *testing.T) {
	t.Parallel()
	bin := builds.Bin(t, pkgTest)
	if _, err := exec.LookPath("true"); err != nil {
		t.Fatal("no true(1)")
	}
	trueBin, _ := exec.LookPath("true")
	for _, tc := range []struct {
		name string
		cfg  func(c *Config)
		kind Kind
		want error
		msg  string
	}{
		{"non-plugin binary", func(c *Config) { c.Path, c.Args = trueBin, nil }, KindPolicy, ErrNotPlugin, "exited before its handshake"},
		{"stdout before handshake", func(c *Config) { c.Args = []string{"-mode", "stdout"} }, KindPolicy, ErrStdoutBeforeHandshake, "hello from a plugin"},
		{"crash at start", func(c *Config) { c.Args = []string{"-mode", "crash"} }, KindPolicy, ErrNotPlugin, "panic: testplugin crashed at start"},
		{"wrong protocol version", func(c *Config) { c.Args = []string{"-mode", "version99"} }, KindPolicy, ErrVersion, "Plugin version: 99"},
		{"wrong kind", func(c *Config) { c.Args = []string{"-mode", "memory"} }, KindPolicy, ErrWrongKind, `serves "presence", configured as policy`},
		{"checksum mismatch", func(c *Config) { c.SHA256 = strings.Repeat("0", 64) }, KindPolicy, ErrChecksum, "configured 0000"},
		{"start timeout", func(c *Config) { c.Args = []string{"-mode", "slowstart"}; c.StartTimeout = 300 * time.Millisecond }, KindPolicy, ErrStartTimeout, "no handshake within"},
		{"missing binary", func(c *Config) { c.Path = filepath.Join(t.TempDir(), "nope") }, KindPolicy, os.ErrNotExist, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := fastConfig(t, bin)
			tc.cfg(&cfg)
			sup, err := Supervise(context.Background(), cfg, tc.kind)
			if err == nil {
				sup.Close()
				t.Fatal("Supervise succeeded")
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error = %v\nwant %v containing %q", err, tc.want, tc.msg)
			}
		})
	}
}

func TestPluginLogsBridgedToSlog(t *testing.T) {
	t.Parallel()
	var buf logBuffer
	path := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, path, rulesYAML)
	cfg := fastConfig(t, builds.Bin(t, pkgRules), "-rules", path)
	cfg.Name = "office-rules"
	cfg.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := NewPolicyClient(context.Background(), PolicyConfig{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, "the plugin's 'rules loaded' line in the host's slog", func() bool {
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.Contains(l, `"msg":"rules loaded"`) && strings.Contains(l, `"plugin":"office-rules"`) &&
				strings.Contains(l, `"level":"INFO"`) && strings.Contains(l, `"rules":3`) {
				return true
			}
		}
		return false
	})
}

func TestPluginClosedLeavesNothing(t *testing.T) {
	t.Parallel()
	c, _ := loadRules(t, rulesYAML, FailDeny, time.Second)
	pid, dir := c.Supervisor().PID(), c.Supervisor().cur.sockDir
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("plugin pid %d still exists after Close (kill 0: %v)", pid, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket dir %s still exists after Close", dir)
	}
	d, err := c.Decide(context.Background(), handoff.Request{Kind: handoff.KindQuery, Requester: "a/b", Owner: "a/c"})
	if err != nil || d.Allow {
		t.Fatalf("Decide after Close = %+v, %v; want the fail mode", d, err)
	}
}

// helperHost is TestPluginKilledWithHost's host process.
func helperHost() {
	c, err := NewPolicyClient(context.Background(), PolicyConfig{Config: Config{Path: os.Getenv("BATON_TEST_HELPER_PLUGIN"), Args: []string{"-mode", "allow"}}})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("pid", c.Supervisor().PID())
	time.Sleep(time.Hour)
}

func TestPluginKilledWithHost(t *testing.T) {
	t.Parallel()
	bin := builds.Bin(t, pkgTest)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	host := exec.Command(self, "-test.run=^$")
	host.Env = append(os.Environ(), "BATON_TEST_HELPER_HOST=1", "BATON_TEST_HELPER_PLUGIN="+bin)
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = host.Process.Kill(); _ = host.Wait() }()
	var word string
	var pid int
	if _, err := fmt.Fscan(out, &word, &pid); err != nil || word != "pid" || pid == 0 {
		t.Fatalf("helper host said %q %d (%v)", word, pid, err)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("plugin %d not running under the host: %v", pid, err)
	}
	if err := host.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = host.Wait()
	eventually(t, "plugin "+strconv.Itoa(pid)+" gone after its host was SIGKILLed", func() bool {
		return syscall.Kill(pid, 0) != nil
	})
}
