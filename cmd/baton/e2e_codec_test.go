package main

import (
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/audio"
)

// TestE2EOpusPluginCall: two `baton phone`s load the codec-opus plugin
// from configuration (plugins.codecs) and prefer it (codecs: [opus, PCMU]);
// the call negotiates opus like a built-in codec and each side records the
// other's tone. Mid-call, alice's Opus plugin is killed with SIGKILL: the
// supervisor restarts it, the call goes on and the audio comes back.
func TestE2EOpusPluginCall(t *testing.T) {
	t.Parallel()
	if err := exec.Command("pkg-config", "--exists", "opus").Run(); err != nil {
		t.Skipf("codec-opus needs libopus: `pkg-config --exists opus` failed (%v); install libopus-dev", err)
	}
	if out, _ := exec.Command("go", "env", "CGO_ENABLED").Output(); string(out) == "0\n" {
		t.Skip("codec-opus needs cgo: CGO_ENABLED=0")
	}
	dir := t.TempDir()
	bin := buildPlugin(t, dir, "codec-opus")
	// The phones' audio is 8 kHz PCM (tones, WAV recordings); the plugin
	// takes that rate and still sends opus/48000/2 on the wire.
	cfg := writeFile(t, dir, "phone.yaml", "codecs: [opus, PCMU]\nplugins:\n  codecs:\n    - path: "+bin+"\n      args: [\"-rate\", \"8000\"]\n")

	pw := addUsers(t, dir, "data", "alice", "bob")
	mustBaton(t, dir, "buddy", "add", "alice", "bob", "--data-dir", "data")
	srv := startAccess(t, "access", dir, "data", "127.0.0.1:0")
	startOpusPhone := func(user, device, pwFile string, tone int, rec string, auto bool) (*proc, string) {
		args := []string{"phone", "--config", cfg, "--access", srv.addr, "--ca", srv.ca, "--user", user, "--device", device,
			"--password-file", pwFile, "--admin", "127.0.0.1:0", "--tone", strconv.Itoa(tone), "--record", rec}
		if auto {
			args = append(args, "--auto-answer")
		}
		p := start(t, user+"/"+device, dir, args...)
		return p, p.waitStdout(t, phoneReady)[3]
	}
	bobP, bobAdmin := startOpusPhone("bob", "mobile", pw["bob"], 440, "bob.wav", true)
	aliceP, aliceAdmin := startOpusPhone("alice", "laptop", pw["alice"], 660, "alice.wav", false)
	_ = bobP
	plug := childPIDs(t, aliceP.cmd.Process.Pid, "codec-opus")
	if len(plug) != 1 {
		t.Fatalf("alice's phone runs %d codec-opus processes, want 1", len(plug))
	}

	waitOnlineBuddy(t, dir, aliceAdmin, "bob/mobile")
	id := dial(t, dir, aliceAdmin, "bob")
	for _, admin := range []string{aliceAdmin, bobAdmin} {
		if row := waitCallState(t, dir, admin, id, "active"); row["CODEC"] != "opus" {
			t.Errorf("active call %v: codec %q, want opus", row, row["CODEC"])
		}
	}
	time.Sleep(2 * time.Second)
	killed := time.Now()
	if err := syscall.Kill(plug[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a restarted codec plugin", func() (bool, string) {
		now := childPIDs(t, aliceP.cmd.Process.Pid, "codec-opus")
		return len(now) == 1 && now[0] != plug[0], strconv.Itoa(len(now)) + " plugin processes"
	})
	t.Logf("plugin restarted %v after the kill", time.Since(killed))
	time.Sleep(2 * time.Second)
	if row := callRow(t, dir, aliceAdmin, id); row == nil || row["STATE"] != "active" {
		t.Fatalf("alice's call after the plugin restart: %v, want active", row)
	}
	mustCtl(t, dir, aliceAdmin, "hangup", id)
	waitCallState(t, dir, bobAdmin, id, "ended")
	waitCallState(t, dir, aliceAdmin, id, "ended")

	checkHears(t, filepath.Join(dir, "alice.wav"), 440, 3*time.Second) // bob's tone, through bob's encoder and alice's decoder
	checkHears(t, filepath.Join(dir, "bob.wav"), 660, 3*time.Second)   // alice's tone
	// Both directions ran through alice's plugin: her recording's last
	// second (after the restart) is bob's tone again, and the gap the
	// restart left is short.
	for _, rec := range []string{"alice.wav", "bob.wav"} {
		clip, err := audio.ReadWAVFile(filepath.Join(dir, rec))
		if err != nil {
			t.Fatal(err)
		}
		tail := clip.Samples[max(0, len(clip.Samples)-clip.SampleRate):]
		want := 440.0
		if rec == "bob.wav" {
			want = 660
		}
		if f := audio.DominantFrequency(tail, clip.SampleRate, toneCandidates); math.Abs(f-want) > 1 || audio.RMS(tail) < 0.05 {
			t.Errorf("%s: last second %v Hz at RMS %.3f, want %v Hz after the plugin restart", rec, f, audio.RMS(tail), want)
		}
		segs := audio.Segments(clip.Samples, clip.SampleRate, 0, toneCandidates)
		var gap time.Duration // silence between the first and last sound
		if len(segs) > 2 {
			gap = audio.LongestSilence(segs[1 : len(segs)-1])
		}
		t.Logf("%s: longest silence mid-call %v", rec, gap)
		if gap > 3*time.Second {
			t.Errorf("%s: %v of silence mid-call: audio did not come back soon after the restart", rec, gap)
		}
	}
}

// Issue 10, a codec plugin in `baton gateway`: the gateway loads
// codec-opus from plugins.codecs and prefers it on its P2P legs (codecs:
// [opus, PCMU]); its SIP legs offer only what SDP can carry here (PCMU).
// alice's SIP desk phone (sipp, PCMU, its RTP on the test's socket) calls
// bob's softphone, which also prefers opus: the P2P call between the
// gateway's alice/desk and bob negotiates opus, the gateway transcodes
// PCMU <-> opus through PCM, and each side hears the other's tone.
func TestE2EGatewayOpusPlugin(t *testing.T) {
	t.Parallel()
	if err := exec.Command("pkg-config", "--exists", "opus").Run(); err != nil {
		t.Skipf("codec-opus needs libopus: `pkg-config --exists opus` failed (%v); install libopus-dev", err)
	}
	if out, _ := exec.Command("go", "env", "CGO_ENABLED").Output(); string(out) == "0\n" {
		t.Skip("codec-opus needs cgo: CGO_ENABLED=0")
	}
	sipp := needTool(t, "sipp")
	bin := buildPlugin(t, t.TempDir(), "codec-opus")
	opus := "codecs: [opus, PCMU]\nplugins:\n  codecs:\n    - path: " + bin + "\n      args: [\"-rate\", \"8000\"]\n"
	n := startBridgeNetWith(t, func(string, map[string]string) string { return opus })
	if st := mustCtl(t, n.dir, n.gwAdmin, "status").stdout; !strings.Contains(st, "alice/desk") {
		t.Fatalf("gateway status:\n%s", st)
	}
	if plug := childPIDs(t, n.gw.cmd.Process.Pid, "codec-opus"); len(plug) != 1 {
		t.Fatalf("the gateway runs %d codec-opus processes, want 1", len(plug))
	}
	cfg := writeFile(t, n.dir, "bob.yaml", opus)
	bobRec := filepath.Join(n.dir, "bob.wav")
	bobP := start(t, "bob/laptop", n.dir, "phone", "--config", cfg, "--access", n.srv.addr, "--ca", n.srv.ca, "--user", "bob", "--device", "laptop",
		"--password-file", n.pw["bob"], "--admin", "127.0.0.1:0", "--tone", "440", "--record", bobRec, "--auto-answer")
	bobAdmin := bobP.waitStdout(t, phoneReady)[3]

	sdir := t.TempDir()
	deskPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.1", "-p", deskPort)
	waitOnlineBuddy(t, n.dir, bobAdmin, "alice/desk")
	desk := startSIPMedia(t, "127.0.0.1", 660)
	call := make(chan error, 1)
	go func() {
		// call_external_media.xml offers PCMU, talks for 10 s, then BYE.
		call <- sippRun(sipp, sdir, n.sipUDP, "call_external_media.xml", "-s", "bob", "-key", "deskuser", "alice",
			"-au", "alice", "-ap", "alice-sip-secret", "-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(desk.addr().Port),
			"-i", "127.0.0.1", "-p", deskPort)
	}()
	id := waitActiveWith(t, n.dir, bobAdmin, "alice/desk", call)
	if row := callRow(t, n.dir, bobAdmin, id); row["CODEC"] != "opus" {
		t.Errorf("bob's call with the gateway: codec %q, want opus (%v)", row["CODEC"], row)
	}
	select {
	case err := <-call:
		if err != nil {
			t.Fatalf("the desk phone's call: %v", err)
		}
	case <-time.After(runTimeout):
		t.Fatal("the desk phone's call did not end")
	}
	waitCallState(t, n.dir, bobAdmin, id, "ended")
	desk.close()
	checkHears(t, bobRec, 660, 2*time.Second)
	// What the desk heard went opus -> PCM -> PCMU: at least 80% of its
	// sound must be bob's 440 Hz (codec transients may be classed as a
	// neighbour tone for a frame or two).
	deskRec := filepath.Join(n.dir, "desk.wav")
	if err := writeWAV(deskRec, desk.pcm()); err != nil {
		t.Fatal(err)
	}
	checkHears(t, deskRec, 440, 2*time.Second)
}
