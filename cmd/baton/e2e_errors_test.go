package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestPhoneErrors runs the mistakes a person makes starting a phone or
// driving one, and checks that each ends the process with a non-zero status
// and a message that says what is wrong.
func TestPhoneErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := addUsers(t, dir, "data", "alice")
	srv := startAccess(t, "access", dir, "data", "127.0.0.1:0")
	wrongPW := writeFile(t, dir, "wrong.pw", "not-alices-password\n")

	// A second access server with its own CA: trusting its ca.crt and
	// logging in to the first one is what a forged or mixed-up trust
	// setup looks like.
	other := startAccess(t, "other access", dir, "other", "127.0.0.1:0")
	if other.fp == srv.fp {
		t.Fatalf("two data directories share CA fingerprint %s", srv.fp)
	}
	other.stop(t)

	login := func(extra ...string) []string {
		return append([]string{"phone", "--access", srv.addr, "--admin", "127.0.0.1:0"}, extra...)
	}
	badKeys := writeFile(t, dir, "bad.yaml", "user: alice\ndevise: laptop\nsignal:\n  lisen: 127.0.0.1:0\nmedia:\n  srtp: maybe\n")
	section := writeFile(t, dir, "section.yaml", "audio: 440\n")
	nothing := freeAddr(t)

	for _, c := range []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{
			name: "wrong password",
			args: login("--ca", srv.ca, "--user", "alice", "--device", "laptop", "--password-file", wrongPW),
			want: []string{"login alice/laptop", "wrong user or password"},
		},
		{
			name: "unknown user",
			args: login("--ca", srv.ca, "--user", "mallory", "--device", "laptop", "--password-file", wrongPW),
			want: []string{"wrong user or password"},
		},
		{
			name: "missing ca",
			args: login("--user", "alice", "--device", "laptop", "--password-file", pw["alice"]),
			want: []string{"config: ca:", "required"},
		},
		{
			name: "ca file does not exist",
			args: login("--ca", filepath.Join("data", "nope.crt"), "--user", "alice", "--device", "laptop", "--password-file", pw["alice"]),
			want: []string{"nope.crt"},
		},
		{
			name: "unknown config keys",
			args: login("--config", badKeys, "--ca", srv.ca, "--password-file", pw["alice"]),
			// Every problem of the file at once, each naming the file.
			want: []string{badKeys + `: unknown key "devise" (did you mean "device"?)`,
				badKeys + `: unknown key "signal.lisen" (did you mean "signal.listen"?)`,
				badKeys + `: media.srtp: "maybe"`},
		},
		{
			name: "section used as a key",
			args: login("--config", section, "--ca", srv.ca, "--user", "alice", "--device", "laptop", "--password-file", pw["alice"]),
			want: []string{section, `"audio" is a section, not a key`, "audio.tone"},
		},
		{
			name: "unknown environment variable",
			env:  []string{"BATON_TONE=440"},
			args: login("--ca", srv.ca, "--user", "alice", "--device", "laptop", "--password-file", pw["alice"]),
			want: []string{"environment variable BATON_TONE", `unknown key "tone"`},
		},
		{
			name: "untrusted access server",
			args: login("--ca", other.ca, "--user", "alice", "--device", "laptop", "--password-file", pw["alice"]),
			want: []string{"access server certificate not trusted", "x509"},
		},
		{
			name: "access server not running",
			args: []string{"phone", "--access", nothing, "--ca", srv.ca, "--user", "alice", "--device", "laptop", "--password-file", pw["alice"]},
			want: []string{"connect " + nothing, "connection refused"},
		},
		{
			name: "access port in use",
			args: []string{"access", "--data-dir", "data", "--listen", srv.addr},
			want: []string{"listen on " + srv.addr, "address already in use"},
		},
		{
			name: "phone admin port in use",
			args: login("--ca", srv.ca, "--user", "alice", "--device", "desk", "--password-file", pw["alice"], "--admin", srv.addr),
			want: []string{"listen on " + srv.addr, "address already in use"},
		},
		{
			name: "phone signaling port in use",
			args: login("--ca", srv.ca, "--user", "alice", "--device", "desk", "--password-file", pw["alice"], "--signal-listen", srv.addr),
			want: []string{"listen for signaling on " + srv.addr, "address already in use"},
		},
		{
			name: "ctl with nothing listening",
			args: []string{"ctl", "--admin", nothing, "calls"},
			want: []string{fmt.Sprintf("nothing answers at %s (is baton running with --admin %s?)", nothing, nothing)},
		},
		{
			name: "ctl with a bad address",
			args: []string{"ctl", "--admin", "127.0.0.1", "calls"},
			want: []string{"config: admin:", "want host:port"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := failBatonEnv(t, dir, c.env, c.want, c.args...)
			if !strings.HasPrefix(r.stderr, "baton: ") && !strings.Contains(r.stderr, "\nbaton: ") {
				t.Errorf("the error is not on a \"baton: \" line:\n%s", r)
			}
			if strings.Contains(r.stdout, "ready") {
				t.Errorf("a failing phone printed its ready line:\n%s", r)
			}
		})
	}
}
