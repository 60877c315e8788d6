package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUserAdmin manages users and buddies through the binary, checks the
// refusals (duplicate user, bad name, empty password, unknown user or link),
// and restarts the access server on the same data directory: the users, the
// password changes and the CA survive, so phones keep trusting it.
func TestUserAdmin(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := addUsers(t, dir, "data", "alice", "bob") // from files
	// carol's password on standard input, with surrounding blanks dropped.
	if r := baton(t, dir, "  carol-secret  \n", "user", "add", "carol", "--data-dir", "data"); r.code != 0 {
		t.Fatalf("user add from stdin:\n%s", r)
	}
	pw["carol"] = writeFile(t, dir, "carol.pw", "carol-secret")

	listed := func(t *testing.T) map[string]string {
		t.Helper()
		out := mustBaton(t, dir, "user", "list", "--data-dir", "data").stdout
		users := map[string]string{}
		for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
			name, buddies, ok := strings.Cut(line, "\tbuddies:")
			if !ok {
				t.Fatalf("user list line %q is not NAME<TAB>buddies: LIST", line)
			}
			users[name] = strings.TrimSpace(buddies)
		}
		return users
	}

	t.Run("add, list, buddies, delete", func(t *testing.T) {
		if r := mustBaton(t, dir, "buddy", "add", "alice", "bob", "--data-dir", "data"); !strings.Contains(r.stdout, "alice and bob are buddies") {
			t.Errorf("buddy add printed:\n%s", r)
		}
		mustBaton(t, dir, "buddy", "add", "carol", "alice", "--data-dir", "data")
		got := listed(t)
		want := map[string]string{"alice": "bob,carol", "bob": "alice", "carol": "alice"}
		for u, b := range want {
			if got[u] != b {
				t.Errorf("user list: %s has buddies %q, want %q (links are mutual)", u, got[u], b)
			}
		}
		if len(got) != len(want) {
			t.Errorf("user list shows %v, want exactly %v", got, want)
		}
		if r := mustBaton(t, dir, "buddy", "del", "carol", "alice", "--data-dir", "data"); !strings.Contains(r.stdout, "no longer buddies") {
			t.Errorf("buddy del printed:\n%s", r)
		}
		if got := listed(t); got["alice"] != "bob" || got["carol"] != "" {
			t.Errorf("after buddy del: %v, want alice with bob only and carol with none", got)
		}
		// A user to delete, with a buddy link that must go with it.
		addUsers(t, dir, "data", "dave")
		mustBaton(t, dir, "buddy", "add", "dave", "bob", "--data-dir", "data")
		if r := mustBaton(t, dir, "user", "del", "dave", "--data-dir", "data"); !strings.Contains(r.stdout, "user dave deleted") {
			t.Errorf("user del printed:\n%s", r)
		}
		got = listed(t)
		if _, ok := got["dave"]; ok || got["bob"] != "alice" {
			t.Errorf("after user del dave: %v, want dave gone and bob's link to dave gone", got)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		empty := writeFile(t, dir, "empty.pw", "\n")
		for _, c := range []struct {
			name  string
			stdin string
			args  []string
			want  string
		}{
			{"duplicate user", "", []string{"user", "add", "alice", "--password-file", pw["alice"]}, "user already exists"},
			{"bad name", "", []string{"user", "add", "Alice", "--password-file", pw["alice"]}, `invalid name "Alice"`},
			{"empty password file", "", []string{"user", "add", "eve", "--password-file", empty}, "empty password"},
			{"empty stdin", "", []string{"user", "add", "eve"}, "empty password"},
			{"missing password file", "", []string{"user", "add", "eve", "--password-file", filepath.Join(dir, "nope.pw")}, "read password file"},
			{"passwd of unknown user", "x\n", []string{"user", "passwd", "nobody"}, "no such user"},
			{"del of unknown user", "", []string{"user", "del", "nobody"}, "no such user"},
			{"buddy with unknown user", "", []string{"buddy", "add", "alice", "nobody"}, "no such user"},
			{"own buddy", "", []string{"buddy", "add", "alice", "alice"}, "cannot be its own buddy"},
			{"duplicate buddy link", "", []string{"buddy", "add", "bob", "alice"}, "already buddies"},
			{"del of missing link", "", []string{"buddy", "del", "alice", "carol"}, "not buddies"},
		} {
			r := baton(t, dir, c.stdin, append(c.args, "--data-dir", "data")...)
			if r.code == 0 || !strings.Contains(r.stderr, c.want) {
				t.Errorf("%s: want a non-zero exit mentioning %q\n%s", c.name, c.want, r)
			}
		}
		if got := listed(t); len(got) != 3 {
			t.Errorf("after the refusals the users are %v, want alice, bob and carol unchanged", got)
		}
	})

	t.Run("restart keeps users and CA", func(t *testing.T) {
		first := startAccess(t, "access (first run)", dir, "data", "127.0.0.1:0")
		p := startPhone(t, dir, first, "alice", "laptop", pw["alice"], phoneOpts{})
		if st := status(t, dir, p.admin); st["logged_in"] != true || st["identity"] != "alice/laptop" {
			t.Errorf("ctl status after login: %v", st)
		}
		p.stop(t)

		// A password change while the server is down.
		newPW := writeFile(t, dir, "alice-new.pw", "alice-new-secret\n")
		if r := mustBaton(t, dir, "user", "passwd", "alice", "--data-dir", "data", "--password-file", newPW); !strings.Contains(r.stdout, "password of alice changed") {
			t.Errorf("user passwd printed:\n%s", r)
		}
		if code := first.stop(t); code != 0 {
			t.Errorf("access server exited %d after SIGINT, want 0", code)
		}
		for _, f := range []string{"ca.crt", "ca.key", "users.db"} {
			if _, err := os.Stat(filepath.Join(dir, "data", f)); err != nil {
				t.Errorf("data directory after a run: %v", err)
			}
		}

		second := startAccess(t, "access (second run)", dir, "data", first.addr)
		if second.fp != first.fp {
			t.Errorf("CA fingerprint changed across a restart: %s, then %s", first.fp, second.fp)
		}
		if second.addr != first.addr {
			t.Errorf("second run listens on %s, want %s", second.addr, first.addr)
		}
		// The old password no longer works; the new one does, with the
		// ca.crt endpoints already had.
		failBaton(t, dir, []string{"wrong user or password"}, "phone", "--access", second.addr, "--ca", first.ca,
			"--user", "alice", "--device", "laptop", "--password-file", pw["alice"], "--admin", "")
		p = startPhone(t, dir, second, "alice", "laptop", newPW, phoneOpts{})
		if st := status(t, dir, p.admin); st["logged_in"] != true {
			t.Errorf("ctl status after login to the restarted server: %v", st)
		}
		b := startPhone(t, dir, second, "bob", "mobile", pw["bob"], phoneOpts{})
		waitOnlineBuddy(t, dir, b.admin, "alice/laptop")
	})
}
