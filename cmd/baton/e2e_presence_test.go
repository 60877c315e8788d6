package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/baton-voice/baton/plugins/presenceredis/redistest"
)

// presenceNet is two `baton access` servers sharing one redis-server
// through the presence-redis plugin. They are one deployment: the second
// server's data directory is a copy of the first's (same CA, same users
// and buddies), as two hosts of one service would be provisioned. Phones
// of either server trust the same CA, so their certificates verify each
// other and they call directly.
type presenceNet struct {
	dir    string
	redis  *redistest.Server
	plugin string
	pw     map[string]string
	a1, a2 *accessServer
}

// startPresenceNet starts redis-server, builds the plugin, creates users
// with buddies (pairs), initialises the CA, copies the data directory and
// starts both access servers with lease TTL lease.
func startPresenceNet(t *testing.T, lease time.Duration, users []string, pairs [][2]string) *presenceNet {
	t.Helper()
	n := &presenceNet{dir: t.TempDir(), redis: redistest.Start(t)}
	n.plugin = buildPlugin(t, n.dir, "presence-redis")
	n.pw = addUsers(t, n.dir, "data1", users...)
	for _, p := range pairs {
		mustBaton(t, n.dir, "buddy", "add", p[0], p[1], "--data-dir", "data1")
	}
	// The first start creates the CA; stopped, its directory is copied.
	first := startAccess(t, "access-init", n.dir, "data1", "127.0.0.1:0")
	first.stop(t)
	if err := os.CopyFS(filepath.Join(n.dir, "data2"), os.DirFS(filepath.Join(n.dir, "data1"))); err != nil {
		t.Fatal(err)
	}
	n.a1 = n.startAccess(t, "access1", "data1", lease)
	n.a2 = n.startAccess(t, "access2", "data2", lease)
	return n
}

func (n *presenceNet) startAccess(t *testing.T, name, data string, lease time.Duration) *accessServer {
	t.Helper()
	cfg := writeFile(t, n.dir, name+".yaml", `presence:
  keepalive: 1s
  timeout: 5s
  plugin:
    path: `+n.plugin+`
    args: ["-addr", "`+n.redis.Addr+`", "-prefix", "e2e:", "-lease", "`+lease.String()+`"]
    owner: `+name+`
    timeout: 1s
`)
	p := start(t, name, n.dir, "access", "--config", cfg, "--data-dir", data, "--listen", "127.0.0.1:0")
	m := p.waitStdout(t, accessReady)
	return &accessServer{proc: p, addr: m[1], ca: m[2], fp: m[3]}
}

// pluginPID is the presence-redis process of access server a.
func pluginPID(t *testing.T, a *accessServer) int {
	t.Helper()
	var pids []int
	eventually(t, pollTimeout, a.name+"'s presence plugin", func() (bool, string) {
		pids = childPIDs(t, a.cmd.Process.Pid, "presence-redis")
		return len(pids) == 1, strconv.Itoa(len(pids)) + " presence-redis processes"
	})
	return pids[0]
}

// waitBuddyStatus polls `ctl buddies` at admin until peer has status.
func waitBuddyStatus(t *testing.T, dir, admin, peer, st string) {
	t.Helper()
	eventually(t, pollTimeout, admin+" to show "+peer+" "+st, func() (bool, string) {
		out := mustCtl(t, dir, admin, "buddies").stdout
		for _, row := range table(t, out) {
			if strings.TrimSuffix(row["BUDDY"], " *") == peer && row["STATUS"] == st {
				return true, out
			}
		}
		return false, out
	})
}

// TestE2EPresenceAcrossAccessServers: alice logged in to access server 1
// and bob logged in to access server 2 see each other's presence, are
// notified of each other's changes and call each other; alice's mobile,
// on server 2, pulls the call from her laptop on server 1; and when server
// 2 is killed with SIGKILL its endpoints go offline for alice once their
// leases expire.
func TestE2EPresenceAcrossAccessServers(t *testing.T) {
	t.Parallel()
	const lease = 2 * time.Second
	n := startPresenceNet(t, lease, []string{"alice", "bob"}, [][2]string{{"alice", "bob"}})
	dir := n.dir
	alice := startPhone(t, dir, n.a1, "alice", "laptop", n.pw["alice"], phoneOpts{tone: 440})
	bob := startPhone(t, dir, n.a2, "bob", "mobile", n.pw["bob"], phoneOpts{tone: 660, autoAnswer: true})
	waitOnlineBuddy(t, dir, alice.admin, "bob/mobile")
	waitOnlineBuddy(t, dir, bob.admin, "alice/laptop")

	// A call across the two servers: signaling and media go phone to
	// phone, the access servers only told each where the other is.
	id := dial(t, dir, alice.admin, "bob")
	waitCallState(t, dir, bob.admin, id, "active")
	eventually(t, pollTimeout, "audio both ways", func() (bool, string) {
		ra, rb := callRow(t, dir, alice.admin, id), callRow(t, dir, bob.admin, id)
		if ra == nil || rb == nil {
			return false, "call gone"
		}
		return packetsReceived(t, ra) > 50 && packetsReceived(t, rb) > 50, ra["INFO"] + " / " + rb["INFO"]
	})

	// Notified across servers: bob's laptop logs in to server 2.
	bobLaptop := startPhone(t, dir, n.a2, "bob", "laptop", n.pw["bob"], phoneOpts{tone: 550})
	waitOnlineBuddy(t, dir, alice.admin, "bob/laptop")

	// A pull across servers: alice/mobile on server 2 takes the call from
	// alice/laptop on server 1.
	mobile := startPhone(t, dir, n.a2, "alice", "mobile", n.pw["alice"], phoneOpts{tone: 880})
	eventually(t, pollTimeout, "the pull from alice/laptop", func() (bool, string) {
		r := ctl(t, dir, mobile.admin, "pull", "--from", "laptop")
		return r.code == 0 && strings.Contains(r.stdout, "done"), r.String()
	})
	if row := waitCallState(t, dir, bob.admin, id, "active"); row["PEER"] != "alice/mobile" {
		t.Fatalf("bob's call is with %q after the pull, want alice/mobile", row["PEER"])
	}

	// bob/laptop logs out cleanly: alice is told at once.
	bobLaptop.stop(t)
	waitBuddyStatus(t, dir, alice.admin, "bob/laptop", "offline")

	// Server 2 dies with SIGKILL; its plugin dies with it (parent-death
	// signal), nobody refreshes bob/mobile's lease, and server 1 takes it
	// offline when it expires.
	plug := pluginPID(t, n.a2)
	t0 := time.Now()
	if err := n.a2.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, pollTimeout, "server 2's plugin gone", func() (bool, string) {
		return syscall.Kill(plug, 0) != nil, "pid " + strconv.Itoa(plug) + " alive"
	})
	waitBuddyStatus(t, dir, alice.admin, "bob/mobile", "offline")
	t.Logf("bob/mobile offline for alice %v after server 2 was killed (lease %v)", time.Since(t0).Round(time.Millisecond), lease)
	_ = bob
}

// TestE2EPresencePluginFaults: with a call up between alice (server 1) and
// bob (server 2), server 1's presence plugin is killed with SIGKILL: the
// supervisor restarts it, the call is untouched, alice stays online for
// bob and server 1 hears of new logins again. Then Redis goes away and the
// plugin is killed again: it cannot start, the call is still untouched, a
// new login on server 1 is refused with a clear error; once Redis is back
// the plugin starts and presence resumes.
func TestE2EPresencePluginFaults(t *testing.T) {
	t.Parallel()
	const lease = 3 * time.Second
	n := startPresenceNet(t, lease, []string{"alice", "bob", "carol"}, [][2]string{{"alice", "bob"}, {"alice", "carol"}, {"bob", "carol"}})
	dir := n.dir
	alice := startPhone(t, dir, n.a1, "alice", "laptop", n.pw["alice"], phoneOpts{tone: 440})
	bob := startPhone(t, dir, n.a2, "bob", "mobile", n.pw["bob"], phoneOpts{tone: 660, autoAnswer: true})
	waitOnlineBuddy(t, dir, alice.admin, "bob/mobile")
	id := dial(t, dir, alice.admin, "bob")
	waitCallState(t, dir, bob.admin, id, "active")
	recvAt := func() uint64 { return packetsReceived(t, waitCallState(t, dir, bob.admin, id, "active")) }

	// 1. SIGKILL the plugin.
	plug := pluginPID(t, n.a1)
	before := recvAt()
	if err := syscall.Kill(plug, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, pollTimeout, "a restarted presence plugin", func() (bool, string) {
		now := childPIDs(t, n.a1.cmd.Process.Pid, "presence-redis")
		return len(now) == 1 && now[0] != plug, strconv.Itoa(len(now)) + " plugin processes"
	})
	eventually(t, pollTimeout, "bob still receiving alice's audio", func() (bool, string) {
		r := recvAt()
		return r > before+50, strconv.FormatUint(r, 10)
	})
	// Past several lease lifetimes alice is still online for bob: the
	// restarted plugin carries on with server 1's leases.
	time.Sleep(2 * lease)
	waitOnlineBuddy(t, dir, bob.admin, "alice/laptop")
	// Server 1 watches again: carol logging in to server 2 reaches alice.
	carol := startPhone(t, dir, n.a2, "carol", "mobile", n.pw["carol"], phoneOpts{tone: 550})
	waitOnlineBuddy(t, dir, alice.admin, "carol/mobile")
	carol.stop(t)
	waitBuddyStatus(t, dir, alice.admin, "carol/mobile", "offline")

	// 2. Redis gone, plugin killed: it cannot start again.
	n.redis.Stop()
	plug = pluginPID(t, n.a1)
	if err := syscall.Kill(plug, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, pollTimeout, "server 1 without a presence plugin", func() (bool, string) {
		return len(childPIDs(t, n.a1.cmd.Process.Pid, "presence-redis")) == 0 && syscall.Kill(plug, 0) != nil, ""
	})
	before = recvAt()
	r := baton(t, dir, "", "phone", "--access", n.a1.addr, "--ca", n.a1.ca, "--user", "carol", "--device", "desk",
		"--password-file", n.pw["carol"], "--admin", "127.0.0.1:0")
	if r.code == 0 || !strings.Contains(r.stderr, "presence unavailable") {
		t.Fatalf("a login while presence is down: want a failure saying presence is unavailable\n%s", r)
	}
	eventually(t, pollTimeout, "the call going on without presence", func() (bool, string) {
		r := recvAt()
		return r > before+50, strconv.FormatUint(r, 10)
	})

	// 3. Redis back (empty: no persistence). The plugin starts at its next
	// retry; server 1 replays its devices, server 2's plugin puts back the
	// leases it lost, and presence flows again.
	n.redis.Restart(t)
	eventually(t, 2*pollTimeout, "server 1's plugin running again", func() (bool, string) {
		return len(childPIDs(t, n.a1.cmd.Process.Pid, "presence-redis")) == 1, ""
	})
	// Server 2's plugin reconnects to the restarted Redis on its own
	// schedule: until it has, a login there is refused with "presence
	// unavailable" (the documented fault behaviour), so carol retries.
	eventually(t, 2*pollTimeout, "carol/mobile logged in to server 2 again", func() (bool, string) {
		p := start(t, "carol/mobile", dir, "phone", "--access", n.a2.addr, "--ca", n.a2.ca, "--user", "carol", "--device", "mobile",
			"--password-file", n.pw["carol"], "--admin", "127.0.0.1:0", "--tone", "550")
		deadline := time.Now().Add(readyTimeout)
		for time.Now().Before(deadline) {
			if m := phoneReady.FindStringSubmatch(p.stdout.String()); m != nil {
				carol = &phone{proc: p, id: m[1], signal: m[2], admin: m[3]}
				return true, ""
			}
			if p.exited() {
				time.Sleep(200 * time.Millisecond)
				return false, p.stderr.String()
			}
			time.Sleep(20 * time.Millisecond)
		}
		p.stop(t)
		return false, "no ready line"
	})
	waitOnlineBuddy(t, dir, alice.admin, "carol/mobile")
	waitOnlineBuddy(t, dir, carol.admin, "alice/laptop")
	waitOnlineBuddy(t, dir, carol.admin, "bob/mobile")
	waitCallState(t, dir, alice.admin, id, "active")
}
