package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-voice/baton/p2p/control"
)

// Issue 9 §5, sip_messages of a gateway on a wildcard listener. The
// gateway listens on 0.0.0.0 (UDP and TCP), inside a network namespace of
// the test's own (DESIGN: only loopback or namespaces we create), with
// the access server and bob's and carol's softphones beside it; alice's
// desk phone (sipp, on 127.0.0.5) calls bob and REFERs him to carol
// (TestE2EGatewayHandoffsBlindTransfer's call). sipgo names the socket's
// real local address, 0.0.0.0:PORT on UDP and 127.0.0.7:PORT for the TCP
// connection the phone opened to 127.0.0.7, not the listener's
// address: the record's sip_messages were empty. They hold the REFER,
// the 202 and the NOTIFYs, from 127.0.0.5, on the transport the phone
// used.
func TestE2EGatewayHandoffsWildcardListener(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			wildcardRefer(t, sipp, network)
		})
	}
}

func wildcardRefer(t *testing.T, sipp, network string) {
	ns := netns(t)
	wrap := []string{"ip", "netns", "exec", ns}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	pw := addUsers(t, dir, data, "alice", "bob", "carol")
	mustBaton(t, dir, "buddy", "add", "alice", "bob", "--data-dir", data)
	mustBaton(t, dir, "buddy", "add", "alice", "carol", "--data-dir", data)
	acc := startIn(t, wrap, nil, "access", dir, "access", "--data-dir", data, "--listen", "127.0.0.1:0")
	m := acc.waitStdout(t, accessReady)
	accAddr, ca := m[1], m[2]

	sipPw := writeFile(t, dir, "alice-sip.pw", "alice-sip-secret\n")
	ha1 := strings.TrimSpace(mustBaton(t, dir, "gateway", "ha1", "--user", "alice", "--realm", "baton", "--password-file", sipPw).stdout)
	cfg := writeFile(t, dir, "gateway.yaml", fmt.Sprintf(`access: %s
ca: %s
sip:
  udp: 0.0.0.0:0
  tcp: 0.0.0.0:0
  realm: baton
accounts:
  - sip_user: alice
    ha1: %s
    device: alice/desk
    password_file: %s
`, accAddr, ca, ha1, pw["alice"]))
	gw := startIn(t, wrap, nil, "gateway", dir, "gateway", "--config", cfg, "--admin", "127.0.0.1:0")
	gm := gw.waitStdout(t, gatewayReady)
	gwAddr := gm[1]
	if network == "tcp" {
		gwAddr = gm[2]
	}
	host, port, err := net.SplitHostPort(gwAddr)
	if err != nil || !net.ParseIP(host).IsUnspecified() {
		t.Fatalf("the gateway's %s listener is %q, want a wildcard address", network, gwAddr)
	}
	admin := gm[4]
	target := "127.0.0.5:" + port
	if network == "tcp" {
		// The phone reaches the gateway at another loopback address than
		// its own: the accepted connection's local address is 127.0.0.7.
		target = "127.0.0.7:" + port
	}

	for _, p := range []struct{ user, device string }{{"bob", "softphone"}, {"carol", "laptop"}} {
		ph := startIn(t, wrap, nil, p.user+"/"+p.device, dir, "phone", "--access", accAddr, "--ca", ca, "--user", p.user, "--device", p.device,
			"--password-file", pw[p.user], "--admin", "127.0.0.1:0", "--tone", "440", "--auto-answer")
		ph.waitStdout(t, phoneReady)
	}

	sdir := t.TempDir()
	sipPort := freeUDPPort(t)
	transport := []string{}
	if network == "tcp" {
		transport = []string{"-t", "t1"}
	}
	common := append([]string{"-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.5", "-p", sipPort}, transport...)
	if err := sippIn(wrap, sipp, sdir, target, "register.xml", common...); err != nil {
		t.Fatal(err)
	}
	// bob's presence at the gateway comes with its login; the REFER's
	// target, carol, too. The call's RTP goes to a port nobody reads:
	// the transfer is about signaling.
	if err := sippIn(wrap, sipp, sdir, target, "call_refer.xml", append([]string{"-s", "bob",
		"-key", "rtpip", "127.0.0.5", "-key", "rtpport", "40000", "-key", "referto", "carol"}, common...)...); err != nil {
		t.Fatalf("the desk phone's transfer: %v", err)
	}

	var list []control.GatewayHandoff
	out, err := exec.Command("ip", "netns", "exec", ns, "curl", "-sf", "http://"+admin+"/v1/handoffs").Output()
	if err != nil {
		t.Fatalf("GET /v1/handoffs in the namespace: %v", err)
	}
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("GET /v1/handoffs: %v\n%s", err, out)
	}
	var rec *control.GatewayHandoff
	for i := range list {
		h := &list[i]
		t.Logf("%s %s %s as %s: %s, %d SIP messages", h.ID, h.Kind, h.Device, h.Role, h.State, len(h.SIPMessages))
		for _, m := range h.SIPMessages {
			t.Logf("    %-8s %-6s %3d %-12s %s", m.Dir, m.Method, m.Status, m.CSeq, m.Remote)
		}
		if h.Kind == "refer" {
			rec = h
		}
	}
	if rec == nil {
		t.Fatalf("no refer record in %s", out)
	}
	if rec.Device != "alice/desk" || rec.Role != "transferee" || rec.State != "done" {
		t.Errorf("refer record: %+v", rec.HandoffInfo)
	}
	refer, ok := findSIP(rec.SIPMessages, "received", "REFER", 0)
	if !ok {
		t.Fatalf("no REFER received in the record's sip_messages %+v (a wildcard listener's messages not filed)", rec.SIPMessages)
	}
	if !strings.HasPrefix(refer.Remote, network+":127.0.0.5:") {
		t.Errorf("the REFER came from %q, want %s:127.0.0.5:PORT", refer.Remote, network)
	}
	if _, ok := findSIPCSeq(rec.SIPMessages, "sent", "", refer.CSeq); !ok {
		t.Errorf("no answer to the REFER in %+v", rec.SIPMessages)
	}
	if _, ok := findSIP(rec.SIPMessages, "sent", "NOTIFY", 0); !ok {
		t.Errorf("no NOTIFY in %+v", rec.SIPMessages)
	}
}

// sippIn is sippRun through wrap (ip netns exec NS).
func sippIn(wrap []string, sipp, dir, target, scenario string, args ...string) error {
	sf, err := filepath.Abs(filepath.Join("..", "..", "gateway", "testdata", "sipp", scenario))
	if err != nil {
		return err
	}
	errFile := filepath.Join(dir, scenario+".errors")
	argv := append(append(append([]string(nil), wrap...), sipp, target, "-sf", sf, "-m", "1", "-timeout", "60s", "-nostdin", "-trace_err", "-error_file", errFile), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		errs, _ := os.ReadFile(errFile)
		return fmt.Errorf("sipp %s: %w\n%s\nerrors:\n%s", scenario, err, tail(string(out), 3000), errs)
	}
	return nil
}
