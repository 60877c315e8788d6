package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
)

var gatewayReady = regexp.MustCompile(`gateway ready: sip udp (\S+) tcp (\S+), (\d+) accounts, admin (\S+)`)

// needTool skips when a third-party peer is missing on a developer's
// machine; CI installs it (.ci/deps.sh), and there a missing tool fails.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" || os.Getenv("BATON_REQUIRE_PEERS") != "" {
			t.Fatalf("%s is not installed (.ci/deps.sh installs it): %v", name, err)
		}
		t.Skipf("%s is not installed; run .ci/deps.sh", name)
	}
	return p
}

// gatewayNet is an access server, users alice (a SIP desk phone) and bob
// (a P2P softphone), and `baton gateway` with alice's SIP account.
type gatewayNet struct {
	dir     string
	srv     *accessServer
	gw      *proc
	sipUDP  string
	gwAdmin string
	pw      map[string]string
}

// sipYAML, when given, are more lines of the gateway's sip: section
// (indented two spaces), e.g. "  srtp: required".
func startGatewayNet(t *testing.T, sipYAML ...string) *gatewayNet {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	srv := startAccess(t, "access", dir, data, "127.0.0.1:0")
	pw := addUsers(t, dir, data, "alice", "bob")
	mustBaton(t, dir, "buddy", "add", "alice", "bob", "--data-dir", data)
	sipPw := writeFile(t, dir, "desk.pw", "desk-secret\n")
	ha1 := strings.TrimSpace(mustBaton(t, dir, "gateway", "ha1", "--user", "alice", "--realm", "baton", "--password-file", sipPw).stdout)
	if len(ha1) != 32 {
		t.Fatalf("gateway ha1 printed %q", ha1)
	}
	cfg := writeFile(t, dir, "gateway.yaml", fmt.Sprintf(`access: %s
ca: %s
sip:
  udp: 127.0.0.1:0
  tcp: ""
  realm: baton
%saccounts:
  - sip_user: alice
    ha1: %s
    device: alice/desk
    password_file: %s
`, srv.addr, srv.ca, sipLines(sipYAML), ha1, pw["alice"]))
	gw := start(t, "gateway", dir, "gateway", "--config", cfg)
	m := gw.waitStdout(t, gatewayReady)
	return &gatewayNet{dir: dir, srv: srv, gw: gw, sipUDP: m[1], gwAdmin: m[4], pw: pw}
}

// writeULaw writes seconds of a hz tone as raw u-law (what sipp's
// rtp_stream plays with payload type 0).
func writeULaw(t *testing.T, path string, hz float64, seconds int) {
	t.Helper()
	tone, err := audio.NewTone(hz, 8000, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, 8000*seconds)
	if err := tone.ReadFrame(pcm); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(pcm))
	n, err := codecs.PCMU().Encode(out, pcm)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out[:n], 0o600); err != nil {
		t.Fatal(err)
	}
}

// sipp, as alice's desk phone, registers with digest through the real
// gateway, calls the P2P softphone bob (authenticating the INVITE), streams
// a 660 Hz tone, and hangs up; bob's recording must hold the tone, and the
// gateway's control API must have shown alice/desk registered.
func TestE2EGatewaySippCallsSoftphone(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startGatewayNet(t)
	rec := filepath.Join(n.dir, "bob.wav")
	bob := startPhone(t, n.dir, n.srv, "bob", "laptop", n.pw["bob"], phoneOpts{tone: 440, record: rec, autoAnswer: true})

	sdir := t.TempDir()
	writeULaw(t, filepath.Join(sdir, "tone.ul"), 660, 4)
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret", "-i", "127.0.0.1", "-p", sipPort)
	eventually(t, pollTimeout, "bob to see alice/desk online", func() (bool, string) {
		r := ctl(t, n.dir, bob.admin, "buddies")
		return strings.Contains(r.stdout, "desk") && strings.Contains(r.stdout, "online"), r.stdout
	})
	runSipp(t, sipp, sdir, n.sipUDP, "call_tone.xml", "-s", "bob", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret",
		"-i", "127.0.0.1", "-p", sipPort, "-mi", "127.0.0.1", "-mp", freeUDPPort(t))
	// bob's call has ended (BYE through the gateway); its recording
	// holds the desk phone's tone.
	waitNoActiveCall(t, n.dir, bob.admin)
	checkHears(t, rec, 660, 2*time.Second)

	st := mustCtl(t, n.dir, n.gwAdmin, "status").stdout
	if !strings.Contains(st, "alice/desk") {
		t.Errorf("gateway status shows no alice/desk registration:\n%s", st)
	}
}

// runSipp runs one scenario of gateway/testdata/sipp once against target
// and fails the test, with sipp's errors, when the scenario fails.
func runSipp(t *testing.T, sipp, dir, target, scenario string, args ...string) {
	t.Helper()
	sf, err := filepath.Abs(filepath.Join("..", "..", "gateway", "testdata", "sipp", scenario))
	if err != nil {
		t.Fatal(err)
	}
	errFile := filepath.Join(dir, scenario+".errors")
	argv := append([]string{target, "-sf", sf, "-m", "1", "-timeout", "30s", "-nostdin", "-trace_err", "-error_file", errFile}, args...)
	cmd := exec.Command(sipp, argv...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		errs, _ := os.ReadFile(errFile)
		t.Fatalf("sipp %s failed: %v\n%s\nerrors:\n%s", scenario, err, tail(string(out), 3000), errs)
	}
}

func waitNoActiveCall(t *testing.T, dir, admin string) {
	t.Helper()
	eventually(t, pollTimeout, "no call left in progress at "+admin, func() (bool, string) {
		r := ctl(t, dir, admin, "calls")
		for _, row := range table(t, r.stdout) {
			if row["STATE"] != "ended" {
				return false, r.stdout
			}
		}
		return true, ""
	})
}

// freeUDPPort returns a loopback port for a third-party peer (sipp's -p,
// -mp) to bind later: free now for UDP and TCP, and p+2 too (sipp's -mp
// binds the port and port+2). The kernel hands out ephemeral ports
// (net.ipv4.ip_local_port_range, 32768-60999 by default) to every socket
// bound to port 0, here the gateway's RTP legs and the phones' media, so
// a port from that range freed and bound again later may be taken in the
// meantime; these come from below it, from a counter shared by the
// package's parallel tests, so no two tests and no OS-chosen port ever
// get the same one.
func freeUDPPort(t *testing.T) string {
	t.Helper()
	for range 500 {
		p := peerPortBase + int(peerPortNext.Add(4))%peerPortSpan
		if portFree(p) && portFree(p+2) {
			return strconv.Itoa(p)
		}
	}
	t.Fatal("no free loopback port below the ephemeral range for a SIP peer")
	return ""
}

const (
	peerPortBase = 20000
	peerPortSpan = 12000 // 20000-31999, below the default ephemeral range
)

// peerPortNext starts at a per-process offset, so test binaries of two
// runs at once rarely start on the same ports.
var peerPortNext = func() *atomic.Int64 {
	var n atomic.Int64
	n.Store(int64(os.Getpid()*16) % peerPortSpan)
	return &n
}()

// portFree says whether p can be bound on 127.0.0.1 for UDP and TCP.
func portFree(p int) bool {
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
	if err != nil {
		return false
	}
	_ = u.Close()
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// baresip is a running baresip, a full SIP user agent, as alice's desk
// phone: it plays a WAV (aufile), records what it hears (sndfile) and is
// driven over its ctrl_tcp socket.
type baresip struct {
	dir  string // config, recordings
	ctrl string // ctrl_tcp address
	cmd  *exec.Cmd
	out  *syncBuffer
}

func startBaresip(t *testing.T, gwUDP string, toneHz float64) *baresip {
	t.Helper()
	return startBaresipWith(t, gwUDP, "desk-secret", toneHz)
}

// startBaresipWith starts baresip as alice with the SIP password sipPw.
//
// opts, when given, add modules and account parameters (SRTP:
// baresipOpts{modules: []string{"srtp.so"}, account: ";mediaenc=srtp-mand"}).
func startBaresipWith(t *testing.T, gwUDP, sipPw string, toneHz float64, opts ...baresipOpts) *baresip {
	t.Helper()
	bin := needTool(t, "baresip")
	dir := t.TempDir()
	wav := filepath.Join(dir, "tone.wav")
	writeToneWAV(t, wav, toneHz, 30)
	ctrlAddr := freeAddr(t)
	cfg := fmt.Sprintf(`poll_method epoll
sip_listen 127.0.0.1:%s
net_interface 127.0.0.1
audio_player aubridge,nil
audio_alert aubridge,nil
audio_source aufile,%s
module_path /usr/lib/baresip/modules
module g711.so
module aufile.so
module aubridge.so
module sndfile.so
%smodule_app account.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen %s
snd_path %s
`, freeUDPPort(t), wav, moduleLines(opts), ctrlAddr, dir)
	writeFile(t, dir, "config", cfg)
	writeFile(t, dir, "accounts", fmt.Sprintf("<sip:alice@%s;transport=udp>;auth_pass=%s;regint=600;answermode=auto;audio_codecs=PCMU,PCMA%s\n", gwUDP, sipPw, accountParams(opts)))
	b := &baresip{dir: dir, ctrl: ctrlAddr, out: &syncBuffer{}}
	b.cmd = exec.Command(bin, "-f", dir)
	b.cmd.Dir = dir
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.cmd.Process.Kill()
		_ = b.cmd.Wait()
		if t.Failed() {
			t.Logf("--- baresip:\n%s", tail(b.out.String(), 4000))
		}
	})
	return b
}

// command sends one ctrl_tcp command (a netstring of JSON).
func (b *baresip) command(t *testing.T, cmd, params string) string {
	t.Helper()
	var conn net.Conn
	eventually(t, readyTimeout, "baresip's control socket", func() (bool, string) {
		var err error
		conn, err = net.Dial("tcp", b.ctrl)
		return err == nil, fmt.Sprint(err)
	})
	defer conn.Close()
	msg, _ := json.Marshal(map[string]string{"command": cmd, "params": params, "token": "t"})
	if _, err := fmt.Fprintf(conn, "%d:%s,", len(msg), msg); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(runTimeout))
	buf := make([]byte, 8192)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("baresip %s: %v", cmd, err)
	}
	return string(buf[:n])
}

// heard returns the recording of what baresip decoded in its call.
func (b *baresip) heard(t *testing.T) string {
	t.Helper()
	var path string
	eventually(t, pollTimeout, "baresip's recording of the call", func() (bool, string) {
		m, _ := filepath.Glob(filepath.Join(b.dir, "*dec*.wav"))
		if len(m) == 0 {
			ls, _ := filepath.Glob(filepath.Join(b.dir, "*"))
			return false, strings.Join(ls, " ")
		}
		path = m[0]
		return true, ""
	})
	return path
}

func writeToneWAV(t *testing.T, path string, hz float64, seconds int) {
	t.Helper()
	tone, err := audio.NewTone(hz, 8000, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, 8000*seconds)
	if err := tone.ReadFrame(pcm); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := audio.NewWAVWriter(f, 8000)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(pcm); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// baresip registers with digest through the real gateway and calls the P2P
// softphone; then the softphone calls it back. Each time each side's
// recording holds the other's tone.
func TestE2EGatewayBaresip(t *testing.T) {
	t.Parallel()
	n := startGatewayNet(t)
	rec := filepath.Join(n.dir, "bob.wav")
	bob := startPhone(t, n.dir, n.srv, "bob", "laptop", n.pw["bob"], phoneOpts{tone: 440, record: rec, autoAnswer: true})
	bs := startBaresip(t, n.sipUDP, 660)
	waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")

	// baresip -> gateway -> bob.
	// (The socket answers with events first; the call itself is checked.)
	bs.command(t, "dial", "sip:bob@"+n.sipUDP)
	var id string
	eventually(t, pollTimeout, "bob to be in an active call", func() (bool, string) {
		r := ctl(t, n.dir, bob.admin, "calls")
		for _, row := range table(t, r.stdout) {
			if row["STATE"] == "active" {
				id = row["ID"]
				return true, ""
			}
		}
		return false, r.stdout
	})
	time.Sleep(3 * time.Second) // three seconds of conversation
	mustCtl(t, n.dir, bob.admin, "hangup", id)
	waitNoActiveCall(t, n.dir, bob.admin)
	checkHears(t, rec, 660, 2*time.Second)
	first := bs.heard(t)
	checkHears(t, first, 440, 2*time.Second)

	// bob -> gateway -> baresip, which answers on its own (answermode=auto).
	for _, f := range []string{first} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	id = dial(t, n.dir, bob.admin, "alice/desk")
	waitCallState(t, n.dir, bob.admin, id, "active")
	time.Sleep(3 * time.Second)
	mustCtl(t, n.dir, bob.admin, "hangup", id)
	waitNoActiveCall(t, n.dir, bob.admin)
	checkHears(t, bs.heard(t), 440, 2*time.Second)
	// bob's second recording (a new numbered file) holds baresip's tone.
	checkHears(t, strings.TrimSuffix(rec, ".wav")+"-2.wav", 660, 2*time.Second)
}
