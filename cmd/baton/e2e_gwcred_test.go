package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gatewayCredential is startBridgeNetWith's extra YAML for a gateway
// credential gw1 issued (through the real `baton gateway add`) for users.
func gatewayCredential(t *testing.T, users string) func(dir string, pw map[string]string) string {
	return func(dir string, _ map[string]string) string {
		t.Helper()
		secret := filepath.Join(dir, "gw1.secret")
		r := mustBaton(t, dir, "gateway", "add", "gw1", "--users", users, "--secret-file", secret, "--data-dir", filepath.Join(dir, "data"))
		if !strings.Contains(r.stdout, "gateway gw1 added") {
			t.Fatalf("gateway add printed %q", r.stdout)
		}
		list := mustBaton(t, dir, "gateway", "list", "--data-dir", filepath.Join(dir, "data")).stdout
		if !strings.Contains(list, "gw1\tusers: "+users) {
			t.Fatalf("gateway list:\n%s", list)
		}
		return fmt.Sprintf("credential:\n  gateway: gw1\n  secret_file: %s\n", secret)
	}
}

// registration returns the gateway status entry of a SIP user.
func registration(t *testing.T, dir, admin, sipUser string) map[string]any {
	t.Helper()
	regs, _ := status(t, dir, admin)["registrations"].([]any)
	for _, r := range regs {
		if m, ok := r.(map[string]any); ok && m["sip_user"] == sipUser {
			return m
		}
	}
	return nil
}

// Issue 8 §1: the gateway logs its devices in with a credential the access
// server issued (`baton gateway add gw1 --users alice`), not with the
// users' passwords. Both desk phones register over SIP (sipp); alice/desk
// comes online, carol/desk is refused by the access server because carol
// is not delegated to gw1, and the gateway's status and log say so, naming
// both. Both phones' logins travel on the gateway's one shared session
// with the access server (issue 8 §1 part 3). bob's softphone calls alice/desk and shows the peer as a SIP device
// via gateway gw1 (its certificate says it is bridged).
func TestE2EGatewayCredentialDelegation(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startBridgeNetWith(t, gatewayCredential(t, "alice"))
	bob := startPhone(t, n.dir, n.srv, "bob", "laptop", n.pw["bob"], phoneOpts{tone: 440})

	sdir := t.TempDir()
	carolPort, alicePort := freeUDPPort(t), freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "carol", "-au", "carol", "-ap", "carol-sip-secret", "-i", "127.0.0.1", "-p", carolPort)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.1", "-p", alicePort)

	eventually(t, pollTimeout, "alice/desk online through gw1, carol/desk refused", func() (bool, string) {
		a, c := registration(t, n.dir, n.gwAdmin, "alice"), registration(t, n.dir, n.gwAdmin, "carol")
		cerr, _ := c["login_error"].(string)
		return a["online"] == true && c["online"] == false && cerr != "", fmt.Sprintf("alice %v, carol %v", a, c)
	})
	cerr := registration(t, n.dir, n.gwAdmin, "carol")["login_error"].(string)
	t.Logf("carol/desk: %s", cerr)
	for _, want := range []string{"gateway gw1", "carol/desk", "not delegated"} {
		if !strings.Contains(cerr, want) {
			t.Errorf("carol's login error %q does not say %q", cerr, want)
		}
	}
	if a := registration(t, n.dir, n.gwAdmin, "alice"); a["login_error"] != nil {
		t.Errorf("alice/desk online but shows a login error: %v", a)
	}
	if log := n.gw.stderr.String(); !strings.Contains(log, "not delegated") {
		t.Errorf("the gateway's log does not say why carol/desk is offline:\n%s", tail(log, 3000))
	}
	if log := n.srv.stderr.String(); !strings.Contains(log, "login refused: user not delegated to the gateway") {
		t.Errorf("the access server's log does not record the refusal:\n%s", tail(log, 3000))
	}

	// Both devices went through the gateway's one shared session (wire
	// gateway-login, then device-login per phone), not a connection each.
	if cr, _ := status(t, n.dir, n.gwAdmin)["credential"].(map[string]any); cr["gateway"] != "gw1" || cr["connected"] != true {
		t.Errorf("gateway status credential: %v, want gw1 connected", cr)
	}
	if log := n.srv.stderr.String(); strings.Count(log, "msg=\"gateway session\"") != 1 {
		t.Errorf("the access server did not log exactly one gateway session:\n%s", tail(log, 3000))
	}

	// bob calls alice/desk; the desk phone (sipp as UAS) answers.
	desk := startSIPMedia(t, "127.0.0.1", 660)
	answered := make(chan error, 1)
	go func() {
		answered <- sippServeWait(sipp, sdir, "answer_until_bye.xml", "-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(desk.addr().Port),
			"-i", "127.0.0.1", "-p", alicePort)
	}()
	time.Sleep(500 * time.Millisecond) // sipp binds its port
	waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")
	id := dial(t, n.dir, bob.admin, "alice/desk")
	row := waitCallState(t, n.dir, bob.admin, id, "active")
	t.Logf("bob's call: %v", row)
	if !strings.Contains(row["INFO"], "peer is SIP, via gateway gw1") {
		t.Errorf("bob's ctl calls does not mark alice/desk as bridged: %v", row)
	}
	mustCtl(t, n.dir, bob.admin, "hangup", id)
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("the desk phone's dialog: %v", err)
		}
	case <-time.After(runTimeout):
		t.Fatal("the desk phone got no BYE")
	}

	// The administrator delegates carol too: the gateway, which keeps
	// retrying (with backoff) while carol's phone is registered, brings
	// carol/desk online without the phone doing anything.
	mustBaton(t, n.dir, "gateway", "delegate", "gw1", "carol", "--data-dir", filepath.Join(n.dir, "data"))
	eventually(t, 60*time.Second, "carol/desk online once delegated", func() (bool, string) {
		c := registration(t, n.dir, n.gwAdmin, "carol")
		return c["online"] == true && c["login_error"] == nil, fmt.Sprint(c)
	})
}

// The gateway's shared access session survives an access server restart:
// when the server goes away the session is reported disconnected, and
// when it is back the bridged phone logs in again on a new gateway session
// (driven by the device's own re-login backoff) and is online for a
// softphone that logs in afterwards.
func TestE2EGatewayCredentialAccessRestart(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startBridgeNetWith(t, gatewayCredential(t, "alice"))
	sdir := t.TempDir()
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret",
		"-i", "127.0.0.1", "-p", freeUDPPort(t))
	connected := func(want bool) func() (bool, string) {
		return func() (bool, string) {
			st := status(t, n.dir, n.gwAdmin)
			cr, _ := st["credential"].(map[string]any)
			a := registration(t, n.dir, n.gwAdmin, "alice")
			return cr["connected"] == want && a["online"] == true, fmt.Sprint(cr, a)
		}
	}
	eventually(t, pollTimeout, "alice/desk online on a connected gateway session", connected(true))

	if code := n.srv.stop(t); code != 0 {
		t.Errorf("access server exited %d after SIGINT, want 0", code)
	}
	eventually(t, pollTimeout, "the gateway to notice its session is gone", connected(false))

	again := startAccess(t, "access (second run)", n.dir, filepath.Join(n.dir, "data"), n.srv.addr)
	// The device retries with backoff (up to 30 s between attempts).
	eventually(t, 60*time.Second, "the gateway session back", connected(true))
	bob := startPhone(t, n.dir, again, "bob", "laptop", n.pw["bob"], phoneOpts{})
	waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")
	if log := again.stderr.String(); !strings.Contains(log, `msg="gateway session"`) {
		t.Errorf("the restarted access server logged no gateway session:\n%s", tail(log, 3000))
	}
}
