package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// Bulk provisioning through the binary (issue 8 §7): `baton gateway add`
// with no users yet, `baton user import` of a CSV with SIP-only users
// delegated to it and a user with a password and buddies, the refusals
// (each naming its line and field, nothing imported), `user add
// --sip-only`, `user list` marking SIP-only users, a SIP-only user's
// password login refused like a wrong password, and a SIP-only user's desk
// phone (sipp, digest) online through the gateway credential, seen online
// by its buddy's softphone.
func TestE2EUserImport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	secret := filepath.Join(dir, "gw1.secret")
	// The credential first, for nobody: the import delegates its users.
	// (The data directory does not exist yet: gateway add needs a user
	// database, so one user is added first.)
	addUsers(t, dir, data, "zed")
	r := mustBaton(t, dir, "gateway", "add", "gw1", "--secret-file", secret, "--data-dir", data)
	if !strings.Contains(r.stdout, "gateway gw1 added for no users yet") {
		t.Fatalf("gateway add without users printed:\n%s", r)
	}

	listed := func() string { return mustBaton(t, dir, "user", "list", "--data-dir", data).stdout }
	before := listed()
	for _, c := range []struct {
		name, csv string
		want      []string
	}{
		{"unknown gateway", "user,gateway\ndesk1,gw1\ndesk2,gw9\n",
			[]string{"line 3, field gateway: no such gateway: gw9", "nothing imported"}},
		// What the file alone shows is reported first, all of it; then
		// what the database shows.
		{"bad name and password", "user,password\nDesk1,\nzed,  \n",
			[]string{"2 problems, nothing imported", `line 2, field user: invalid name "Desk1"`, "line 3, field password"}},
		{"existing users", "user,password\ndesk1,\nzed,x\nbob,y\nbob2,\nzed2,\n",
			[]string{"1 problem, nothing imported", "line 3, field user: user already exists: zed"}},
		{"unknown column", "user,pass\ndesk1,x\n", []string{`line 1: unknown column "pass"`}},
		{"buddy nowhere", "user,buddies\ndesk1,ghost\n", []string{"line 2, field buddies: no such user: ghost"}},
	} {
		f := writeFile(t, dir, "bad.csv", c.csv)
		failBaton(t, dir, c.want, "user", "import", f, "--data-dir", data)
		if got := listed(); got != before {
			t.Errorf("%s: a refused import changed the users:\n%s\nwas:\n%s", c.name, got, before)
		}
	}

	f := writeFile(t, dir, "phones.csv", "# desk phones of the second floor\n"+
		"user,password,gateway,buddies\n"+
		"desk1,,gw1,bob\n"+
		"desk2,,gw1,\n"+
		"bob,bob-secret,,zed\n")
	r = mustBaton(t, dir, "user", "import", f, "--data-dir", data)
	if want := "imported 3 users (2 SIP-only), 2 delegated to a gateway, 2 buddy links"; !strings.Contains(r.stdout, want) {
		t.Errorf("user import printed %q, want %q", r.stdout, want)
	}
	mustBaton(t, dir, "user", "add", "desk3", "--sip-only", "--data-dir", data)
	failBaton(t, dir, []string{"--sip-only users have no password"}, "user", "add", "desk4", "--sip-only", "--password-file", f, "--data-dir", data)
	mustBaton(t, dir, "gateway", "delegate", "gw1", "desk3", "--data-dir", data)
	got := listed()
	for _, want := range []string{"bob\tbuddies: desk1,zed\n", "desk1\tbuddies: bob\tsip-only\n", "desk2\tbuddies: \tsip-only\n", "desk3\tbuddies: \tsip-only\n", "zed\tbuddies: bob\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("user list does not show %q:\n%s", want, got)
		}
	}
	if gl := mustBaton(t, dir, "gateway", "list", "--data-dir", data).stdout; !strings.Contains(gl, "gw1\tusers: desk1,desk2,desk3") {
		t.Errorf("gateway list:\n%s", gl)
	}

	srv := startAccess(t, "access", dir, data, "127.0.0.1:0")
	// A SIP-only user has no password: any is refused as a wrong one.
	failBaton(t, dir, []string{"wrong user or password"}, "phone", "--access", srv.addr, "--ca", srv.ca,
		"--user", "desk1", "--device", "laptop", "--password-file", writeFile(t, dir, "guess.pw", "guess\n"), "--admin", "")
	bob := startPhone(t, dir, srv, "bob", "laptop", writeFile(t, dir, "bob.pw", "bob-secret\n"), phoneOpts{})

	// The gateway logs desk1's phone in with gw1's credential.
	sipPw := writeFile(t, dir, "desk1-sip.pw", "desk1-sip-secret\n")
	ha1 := strings.TrimSpace(mustBaton(t, dir, "gateway", "ha1", "--user", "desk1", "--realm", "baton", "--password-file", sipPw).stdout)
	cfg := writeFile(t, dir, "gateway.yaml", fmt.Sprintf(`access: %s
ca: %s
sip: {udp: 127.0.0.1:0, tcp: "", realm: baton}
credential: {gateway: gw1, secret_file: %s}
accounts:
  - {sip_user: desk1, ha1: %s, device: desk1/desk}
`, srv.addr, srv.ca, secret, ha1))
	gw := start(t, "gateway", dir, "gateway", "--config", cfg)
	m := gw.waitStdout(t, gatewayReady)
	sipp := needTool(t, "sipp")
	runSipp(t, sipp, t.TempDir(), m[1], "register.xml", "-key", "deskuser", "desk1", "-au", "desk1", "-ap", "desk1-sip-secret",
		"-i", "127.0.0.1", "-p", freeUDPPort(t))
	waitOnlineBuddy(t, dir, bob.admin, "desk1/desk")
	if a := registration(t, dir, m[4], "desk1"); a["online"] != true || a["login_error"] != nil {
		t.Errorf("desk1's registration at the gateway: %v", a)
	}
}
