package main

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// netns creates a network namespace of the test's own (DESIGN: only
// loopback or namespaces we create), with lo up, and removes it at the end.
// It needs root and iproute2; without them the test fails and says how to
// get them (CI runs as root; .ci/deps.sh installs iproute2).
func netns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test creates a network namespace and needs root: run the tests as root, as CI does")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("ip not found: install iproute2 (apt-get install iproute2, or make deps)")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := "baton-e2e-" + hex.EncodeToString(b[:])
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	run("netns", "exec", ns, "ip", "link", "set", "lo", "up")
	return ns
}

// TestMediaMovesWhenAddressDisappears takes the laptop's media address away
// mid-call, in a namespace of the test's own, as a lost Wi-Fi would: the
// phone notices by itself, moves its media to its fallback address, tells
// bob, and the call goes on (DESIGN.md §2, mobility).
func TestMediaMovesWhenAddressDisappears(t *testing.T) {
	t.Parallel()
	ns := netns(t)
	wrap := []string{"ip", "netns", "exec", ns}
	const wifi = "192.0.2.10" // TEST-NET-1, only inside our namespace
	if out, err := exec.Command("ip", "netns", "exec", ns, "ip", "addr", "add", wifi+"/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("adding %s: %v\n%s", wifi, err, out)
	}
	dir := t.TempDir()
	pw := addUsers(t, dir, "data", "alice", "bob")
	mustBaton(t, dir, "buddy", "add", "alice", "bob", "--data-dir", "data")

	acc := startIn(t, wrap, nil, "access", dir, "access", "--data-dir", "data", "--listen", "127.0.0.1:0")
	m := acc.waitStdout(t, accessReady)
	addr, ca := m[1], m[2]
	bob := startIn(t, wrap, nil, "bob/mobile", dir, "phone", "--access", addr, "--ca", ca, "--user", "bob", "--device", "mobile",
		"--password-file", pw["bob"], "--admin", "127.0.0.1:0", "--tone", "440", "--record", "bob.wav", "--auto-answer")
	bobAdmin := bob.waitStdout(t, phoneReady)[3]
	alice := startIn(t, wrap, []string{"BATON_MEDIA__FALLBACK_IPS=127.0.0.1", "BATON_MEDIA__WATCH=200ms"}, "alice/laptop", dir,
		"phone", "--access", addr, "--ca", ca, "--user", "alice", "--device", "laptop", "--password-file", pw["alice"],
		"--admin", "127.0.0.1:0", "--tone", "660", "--media-ip", wifi)
	aliceAdmin := alice.waitStdout(t, phoneReady)[3]

	ctlNS := func(admin string, args ...string) result {
		t.Helper()
		r := batonIn(t, wrap, dir, "", nil, append([]string{"ctl", "--admin", admin}, args...)...)
		if r.code != 0 {
			t.Fatalf("ctl failed:\n%s", r)
		}
		return r
	}
	bobCall := func() map[string]string {
		rows := table(t, ctlNS(bobAdmin, "calls").stdout)
		if len(rows) == 0 {
			return nil
		}
		return rows[0]
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("bob to see alice online", func() bool {
		return regexp.MustCompile(`alice/laptop\s+online`).MatchString(ctlNS(bobAdmin, "buddies").stdout)
	})
	ctlNS(aliceAdmin, "call", "bob")
	waitFor("the call to be active, bob sending to "+wifi, func() bool {
		row := bobCall()
		return row != nil && row["STATE"] == "active" && strings.HasPrefix(row["REMOTE MEDIA"], wifi+":")
	})
	time.Sleep(time.Second)

	// The Wi-Fi goes away.
	if out, err := exec.Command("ip", "netns", "exec", ns, "ip", "addr", "del", wifi+"/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("removing %s: %v\n%s", wifi, err, out)
	}
	waitFor("bob to send to alice's fallback address", func() bool {
		row := bobCall()
		return row != nil && row["STATE"] == "active" && strings.HasPrefix(row["REMOTE MEDIA"], "127.0.0.1:")
	})
	h := ctlNS(aliceAdmin, "handoffs").stdout
	if !strings.Contains(h, "rebind") || !strings.Contains(h, "done") || !strings.Contains(h, "step 12") {
		t.Errorf("alice's handoffs after losing her address:\n%s", h)
	}
	time.Sleep(time.Second)
	id := bobCall()["ID"]
	ctlNS(bobAdmin, "hangup", id)
	for _, p := range []*proc{alice, bob, acc} {
		p.stop(t)
	}
	order, _, err := toneOrder(filepath.Join(dir, "bob.wav"), []float64{440, 660})
	if err != nil || order != "660" {
		t.Errorf("bob heard %q (%v), want alice's 660 Hz throughout", order, err)
	}
}
