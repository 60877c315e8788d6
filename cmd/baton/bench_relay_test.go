package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 8 §7, relayed calls through the real `baton gateway` (the small
// companion of gateway/bench_relay_test.go, which measures the relay
// itself at up to thousands of calls next to rtpengine): K concurrent
// calls from sipp, as alice's registered desk phone streaming a tone, to K
// auto-answering PCMU-only softphones bob/p1..pK, with the desk phone on
// PCMU (relay without decoding) and on PCMA (transcoding). The gateway's
// CPU per packet is its user+system time over a steady window divided by
// the RTP packets it received on both sides of the calls (its status:
// sip_leg and p2p_leg counters). K is bounded by the gateway device's
// call limit (8) and by what K softphones cost next to it on 2 cores.
//
// BATON_BENCH_RELAY=1 (make bench-relay); BATON_BENCH_RELAY_GW_CALLS
// (default 8).
func TestBenchRelayGateway(t *testing.T) {
	if os.Getenv("BATON_BENCH_RELAY") != "1" {
		t.Skip("benchmark: set BATON_BENCH_RELAY=1 (make bench-relay)")
	}
	sipp := needTool(t, "sipp")
	k := envInt(t, "BATON_BENCH_RELAY_GW_CALLS", 8)
	n := startGatewayNet(t)
	var inf strings.Builder
	inf.WriteString("SEQUENTIAL\n")
	var phones []*phone
	for i := 1; i <= k; i++ {
		p := startPhoneArgs(t, n.dir, n.srv, "bob", fmt.Sprintf("p%d", i), n.pw["bob"], phoneOpts{tone: 440}, "--codecs", "PCMU")
		phones = append(phones, p)
		fmt.Fprintf(&inf, "bob+p%d;\n", i)
	}
	sdir := t.TempDir()
	infFile := writeFile(t, sdir, "callees.csv", inf.String())
	writeULaw(t, filepath.Join(sdir, "tone.ul"), 660, 4)
	writeALaw(t, filepath.Join(sdir, "tone.al"), 660, 4)
	src, err := os.ReadFile(filepath.Join("..", "..", "gateway", "testdata", "sipp", "call_tone.xml"))
	if err != nil {
		t.Fatal(err)
	}
	// call_tone.xml, 16 s long, the callee from the -inf file.
	long := strings.NewReplacer(`<pause milliseconds="3000"/>`, `<pause milliseconds="16000"/>`, "[service]", "[field0]").Replace(string(src))
	scen := map[string]string{
		"relay": writeFile(t, sdir, "long_pcmu.xml", long),
		"transcode": writeFile(t, sdir, "long_pcma.xml", strings.NewReplacer("RTP/AVP 0", "RTP/AVP 8", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
			`rtp_stream="tone.ul,-1,0"`, `rtp_stream="tone.al,-1,8"`).Replace(long)),
	}
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret", "-i", "127.0.0.1", "-p", sipPort)
	p := phones[len(phones)-1]
	eventually(t, pollTimeout, p.id+" to see alice/desk online", func() (bool, string) {
		r := ctl(t, n.dir, p.admin, "buddies")
		return strings.Contains(r.stdout, "desk") && strings.Contains(r.stdout, "online"), r.stdout
	})
	gwPid := n.gw.cmd.Process.Pid
	for _, mode := range []string{"relay", "transcode"} {
		cmd := exec.Command(sipp, n.sipUDP, "-sf", scen[mode], "-inf", infFile, "-m", fmt.Sprint(k), "-l", fmt.Sprint(k), "-r", fmt.Sprint(k),
			"-timeout", "60s", "-nostdin", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret",
			"-i", "127.0.0.1", "-p", sipPort, "-mi", "127.0.0.1", "-mp", freeUDPPort(t))
		cmd.Dir = sdir
		var out []byte
		var sippErr error
		done := make(chan struct{})
		go func() { defer close(done); out, sippErr = cmd.CombinedOutput() }()
		// Steady state: all K calls up for a second; then a 10 s window.
		time.Sleep(4 * time.Second)
		p0, c0 := gatewayPackets(t, n), procTicks(gwPid)
		t0 := time.Now()
		time.Sleep(10 * time.Second)
		p1, c1 := gatewayPackets(t, n), procTicks(gwPid)
		wall := time.Since(t0)
		relayed := 0.0
		for _, ci := range gatewayCalls(t, n) {
			relayed += ci.relayed
		}
		<-done
		if sippErr != nil {
			t.Fatalf("%s: sipp: %v\n%s", mode, sippErr, tail(string(out), 3000))
		}
		in := p1.in - p0.in
		cpu := time.Duration(c1-c0) * 10 * time.Millisecond
		us := 0.0
		if in > 0 {
			us = float64(cpu.Microseconds()) / in
		}
		t.Logf("RESULT gateway %-9s calls %d: %.0f RTP packets in (SIP %.0f, P2P %.0f) over %v, %.0f sent; gateway CPU %v = %.1f µs/packet in (%.0f%% of a core), frames relayed without decoding in the calls %.0f, load %s",
			mode, p1.calls, in, p1.sipIn-p0.sipIn, p1.p2pIn-p0.p2pIn, wall.Round(time.Millisecond), p1.out-p0.out, cpu, us, 100*cpu.Seconds()/wall.Seconds(), relayed, loadAvg())
		if p1.calls < k {
			t.Errorf("%s: only %d of %d calls were up in the window", mode, p1.calls, k)
		}
		if mode == "relay" && relayed == 0 || mode == "transcode" && relayed != 0 {
			t.Errorf("%s: %.0f frames relayed without decoding", mode, relayed)
		}
		gatewayIdle(t, n.dir, n.gwAdmin)
	}
}

type gwPackets struct {
	calls                 int
	in, out, sipIn, p2pIn float64
}

type gwCall struct{ relayed float64 }

func gatewayCalls(t *testing.T, n *gatewayNet) []gwCall {
	var out []gwCall
	calls, _ := status(t, n.dir, n.gwAdmin)["calls"].([]any)
	for _, c := range calls {
		m, _ := c.(map[string]any)
		leg, _ := m["sip_leg"].(map[string]any)
		r, _ := leg["frames_relayed"].(float64)
		out = append(out, gwCall{relayed: r})
	}
	return out
}

// gatewayPackets sums the RTP counters of the gateway's active calls.
func gatewayPackets(t *testing.T, n *gatewayNet) gwPackets {
	var p gwPackets
	calls, _ := status(t, n.dir, n.gwAdmin)["calls"].([]any)
	for _, c := range calls {
		m, _ := c.(map[string]any)
		if m["state"] == "ended" {
			continue
		}
		p.calls++
		leg, _ := m["sip_leg"].(map[string]any)
		p2p, _ := m["p2p_leg"].(map[string]any)
		f := func(m map[string]any, k string) float64 { v, _ := m[k].(float64); return v }
		p.sipIn += f(leg, "packets_received")
		p.p2pIn += f(p2p, "packets_received")
		p.out += f(leg, "packets_sent") + f(p2p, "packets_sent")
	}
	p.in = p.sipIn + p.p2pIn
	return p
}

// procTicks is pid's CPU time in clock ticks (10 ms).
func procTicks(pid int) int { return cpuTicks(pid) }
