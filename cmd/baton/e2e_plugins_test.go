package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildPlugin builds the in-tree plugin ./plugins/cmd/NAME into dir.
func buildPlugin(t *testing.T, dir, name string) string {
	t.Helper()
	bin := filepath.Join(dir, name)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./plugins/cmd/"+name)
	cmd.Dir = moduleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./plugins/cmd/%s: %v\n%s", name, err, out)
	}
	return bin
}

// moduleRoot is the directory of go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// childPIDs lists the processes whose parent is pid and whose command line
// contains substr.
func childPIDs(t *testing.T, pid int, substr string) []int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces, so split after ')'.
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if strings.Contains(string(cmdline), substr) {
			out = append(out, n)
		}
	}
	return out
}

// TestE2EPluginsCheckAndList runs `baton plugins check` and `list` on the
// in-tree policy plugin and on binaries that are not plugins.
func TestE2EPluginsCheckAndList(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pdir := filepath.Join(dir, "plugins")
	if err := os.Mkdir(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := buildPlugin(t, pdir, "policy-rules")
	rules := writeFile(t, dir, "rules.yaml", "default: deny\nrules:\n  - {same_user: true, action: allow}\n")

	r := mustBaton(t, dir, "plugins", "check", bin, "--", "-rules", rules)
	for _, want := range []string{"kind:", "policy (protocol v1)", "name:", "policy-rules", "health:", "ok", "self-test:", "probe:", "Decide("} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plugins check printed no %q:\n%s", want, r.stdout)
		}
	}
	// The plugin refuses to start without its rules file: a crash at start.
	failBaton(t, dir, []string{"policy-rules", "not a Baton plugin, or it crashed at start"}, "plugins", "check", bin, "--", "-rules", filepath.Join(dir, "missing.yaml"))
	// A program that prints to stdout before any handshake.
	chatty := writeFile(t, pdir, "chatty", "#!/bin/sh\necho hello there\nsleep 5\n")
	if err := os.Chmod(chatty, 0o755); err != nil {
		t.Fatal(err)
	}
	failBaton(t, dir, []string{"chatty"}, "plugins", "check", chatty)
	failBaton(t, dir, []string{"not an executable file"}, "plugins", "check", rules)

	// list: the policy plugin is ok (it starts without -rules? no: it needs
	// its file, so it is listed with its error), the chatty script is not.
	l := baton(t, dir, "", "plugins", "list", pdir)
	if l.code == 0 {
		t.Errorf("plugins list with broken plugins exited 0:\n%s", l)
	}
	for _, want := range []string{"FILE", "chatty", "policy-rules", "are not working plugins"} {
		if !strings.Contains(l.stdout+l.stderr, want) {
			t.Errorf("plugins list printed no %q:\n%s", want, l)
		}
	}
	failBaton(t, dir, []string{"list", "no such file"}, "plugins", "list", filepath.Join(dir, "nope"))
}

// TestE2EPolicyPluginDecidesPulls runs a phone whose transfer policy is the
// policy-rules plugin: the rules refuse alice/mobile's pull with their
// reason and let alice/laptop pull; the plugin killed with SIGKILL is
// restarted and the call it guards goes on.
func TestE2EPolicyPluginDecidesPulls(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := buildPlugin(t, dir, "policy-rules")
	rules := writeFile(t, dir, "rules.yaml", `default: deny
rules:
  - name: no mobile pulls
    kind: pull
    requester: "alice/mobile"
    action: deny
    reason: "the mobile may not take desk calls"
  - name: own devices
    same_user: true
    action: allow
`)
	cfg := writeFile(t, dir, "desk.yaml", "plugins:\n  policy:\n    path: "+bin+"\n    args: [\"-rules\", \""+rules+"\"]\n    fail_mode: deny\n")

	pw := addUsers(t, dir, "data", "alice", "bob")
	mustBaton(t, dir, "buddy", "add", "alice", "bob", "--data-dir", "data")
	srv := startAccess(t, "access", dir, "data", "127.0.0.1:0")
	bob := startPhone(t, dir, srv, "bob", "mobile", pw["bob"], phoneOpts{tone: 440, autoAnswer: true})
	deskP := start(t, "alice/desk", dir, "phone", "--config", cfg, "--access", srv.addr, "--ca", srv.ca, "--user", "alice", "--device", "desk",
		"--password-file", pw["alice"], "--admin", "127.0.0.1:0", "--tone", "660")
	deskAdmin := deskP.waitStdout(t, phoneReady)[3]
	mobile := startPhone(t, dir, srv, "alice", "mobile", pw["alice"], phoneOpts{tone: 770})
	laptop := startPhone(t, dir, srv, "alice", "laptop", pw["alice"], phoneOpts{tone: 880})

	plug := childPIDs(t, deskP.cmd.Process.Pid, "policy-rules")
	if len(plug) != 1 {
		t.Fatalf("the desk runs %d policy-rules processes, want 1", len(plug))
	}
	waitOnlineBuddy(t, dir, deskAdmin, "bob/mobile")
	id := dial(t, dir, deskAdmin, "bob")
	waitCallState(t, dir, bob.admin, id, "active")

	// The desk does not offer a session the policy would refuse: the mobile
	// finds nothing to pull, the desk logs the rule's reason.
	if f := ctl(t, dir, mobile.admin, "pull", "--from", "desk"); f.code == 0 || !strings.Contains(f.stdout+f.stderr, "nothing to pull") {
		t.Errorf("mobile's pull: exit %d, want nothing to pull\n%s", f.code, f)
	}
	eventually(t, 5*time.Second, "the desk logging the rule's reason", func() (bool, string) {
		return strings.Contains(deskP.stderr.String(), "the mobile may not take desk calls"), ""
	})
	waitCallState(t, dir, deskAdmin, id, "active")

	// SIGKILL the plugin: the supervisor starts a new one; the call goes on.
	if err := syscall.Kill(plug[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a restarted policy plugin", func() (bool, string) {
		now := childPIDs(t, deskP.cmd.Process.Pid, "policy-rules")
		return len(now) == 1 && now[0] != plug[0], strconv.Itoa(len(now)) + " plugin processes"
	})
	waitCallState(t, dir, bob.admin, id, "active")

	r := mustCtl(t, dir, laptop.admin, "pull", "--from", "desk")
	if !strings.Contains(r.stdout, "done") {
		t.Errorf("laptop's pull did not report done:\n%s", r.stdout)
	}
	if row := waitCallState(t, dir, bob.admin, id, "active"); row["PEER"] != "alice/laptop" {
		t.Errorf("bob's call is with %q, want alice/laptop", row["PEER"])
	}
	// The desk stops its plugin when it exits.
	last := childPIDs(t, deskP.cmd.Process.Pid, "policy-rules")
	deskP.stop(t)
	for _, pid := range last {
		eventually(t, 10*time.Second, "the plugin gone with the desk", func() (bool, string) {
			return syscall.Kill(pid, 0) != nil, "pid " + strconv.Itoa(pid) + " alive"
		})
	}
}

// TestE2EPolicyPluginAtGateway gives the gateway's devices the
// policy-rules plugin: alice's SIP desk phone has a call with bob; the
// rules keep alice/mobile from pulling it (nothing offered, the gateway
// logs the reason, the desk keeps the call) and let alice/laptop pull it.
func TestE2EPolicyPluginAtGateway(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	bdir := t.TempDir()
	bin := buildPlugin(t, bdir, "policy-rules")
	rules := writeFile(t, bdir, "rules.yaml", `rules:
  - {kind: pull, requester: "alice/mobile", action: deny, reason: "no desk calls on the mobile"}
  - {same_user: true, action: allow}
`)
	n := startBridgeNetWith(t, func(string, map[string]string) string {
		return "plugins:\n  policy:\n    path: " + bin + "\n    args: [\"-rules\", \"" + rules + "\"]\n"
	})
	bob := startPhone(t, n.dir, n.srv, "bob", "softphone", n.pw["bob"], phoneOpts{tone: 660, autoAnswer: true})

	sdir := t.TempDir()
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.1", "-p", sipPort)
	desk := startSIPMedia(t, "127.0.0.1", 440)
	call := make(chan error, 1)
	go func() {
		call <- sippRun(sipp, sdir, n.sipUDP, "call_until_bye.xml", "-s", "bob", "-key", "deskuser", "alice",
			"-au", "alice", "-ap", "alice-sip-secret", "-key", "rtpip", "127.0.0.1", "-key", "rtpport", strconv.Itoa(desk.addr().Port),
			"-i", "127.0.0.1", "-p", sipPort)
	}()
	id := waitActiveWith(t, n.dir, bob.admin, "alice/desk", call)

	mobile := startPhone(t, n.dir, n.srv, "alice", "mobile", n.pw["alice"], phoneOpts{tone: 770})
	if f := ctl(t, n.dir, mobile.admin, "pull", "--from", "desk"); f.code == 0 || !strings.Contains(f.stdout+f.stderr, "nothing to pull") {
		t.Errorf("mobile's pull: exit %d, want nothing to pull\n%s", f.code, f)
	}
	eventually(t, 5*time.Second, "the gateway logging the rule's reason", func() (bool, string) {
		return strings.Contains(n.gw.stderr.String(), "no desk calls on the mobile"), ""
	})
	if row := callRow(t, n.dir, bob.admin, id); row == nil || row["STATE"] != "active" || row["PEER"] != "alice/desk" {
		t.Fatalf("bob's call after the refused pull: %v, want active with alice/desk", row)
	}

	laptop := startPhone(t, n.dir, n.srv, "alice", "laptop", n.pw["alice"], phoneOpts{tone: 880})
	if r := mustCtl(t, n.dir, laptop.admin, "pull", "--from", "desk"); !strings.Contains(r.stdout, "done") {
		t.Fatalf("laptop's pull did not report done:\n%s", r.stdout)
	}
	select {
	case err := <-call:
		if err != nil {
			t.Fatalf("the desk phone's dialog: %v", err)
		}
	case <-time.After(runTimeout):
		t.Fatal("the gateway never sent BYE to the desk phone after the handoff")
	}
	if row := callRow(t, n.dir, bob.admin, id); row == nil || row["STATE"] != "active" || row["PEER"] != "alice/laptop" {
		t.Fatalf("bob's call after the pull: %v, want active with alice/laptop", row)
	}
}
