package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
)

// Issue 8 §3 through the real binaries: sipp as alice's desk phone calls
// two P2P softphones through `baton gateway`. bob/laptop speaks PCMU like
// the desk phone: the gateway relays the frames without decoding them
// (sip_leg.frames_relayed in the gateway's status grows). bob/mobile
// speaks only PCMU while the desk phone offers only PCMA: the gateway
// transcodes (frames_relayed stays 0). Both softphones hear the phone's
// 660 Hz tone.
func TestE2EGatewayRelayWithoutDecoding(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startGatewayNet(t)
	recLaptop := filepath.Join(n.dir, "laptop.wav")
	recMobile := filepath.Join(n.dir, "mobile.wav")
	laptop := startPhone(t, n.dir, n.srv, "bob", "laptop", n.pw["bob"], phoneOpts{tone: 440, record: recLaptop, autoAnswer: true})
	mobile := startPhoneArgs(t, n.dir, n.srv, "bob", "mobile", n.pw["bob"], phoneOpts{tone: 440, record: recMobile, autoAnswer: true}, "--codecs", "PCMU")

	sdir := t.TempDir()
	writeULaw(t, filepath.Join(sdir, "tone.ul"), 660, 4)
	writeALaw(t, filepath.Join(sdir, "tone.al"), 660, 4)
	// The PCMA variant of call_tone.xml: the same dialog, an A-law offer
	// and A-law RTP (payload type 8).
	src, err := os.ReadFile(filepath.Join("..", "..", "gateway", "testdata", "sipp", "call_tone.xml"))
	if err != nil {
		t.Fatal(err)
	}
	pcma := strings.NewReplacer("RTP/AVP 0", "RTP/AVP 8", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", `rtp_stream="tone.ul,-1,0"`, `rtp_stream="tone.al,-1,8"`).Replace(string(src))
	if pcma == string(src) || strings.Contains(pcma, "PCMU") {
		t.Fatal("could not derive the PCMA scenario from call_tone.xml")
	}
	pcmaFile := writeFile(t, sdir, "call_tone_pcma.xml", pcma)

	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret", "-i", "127.0.0.1", "-p", sipPort)
	for _, p := range []*phone{laptop, mobile} {
		eventually(t, pollTimeout, p.id+" to see alice/desk online", func() (bool, string) {
			r := ctl(t, n.dir, p.admin, "buddies")
			return strings.Contains(r.stdout, "desk") && strings.Contains(r.stdout, "online"), r.stdout
		})
	}

	for _, c := range []struct {
		name, callee, scenario, codec string
		relayed                       bool
		p                             *phone
		rec                           string
	}{
		{"same codec", "bob+laptop", "call_tone.xml", "PCMU", true, laptop, recLaptop},
		{"transcoding", "bob+mobile", pcmaFile, "PCMA", false, mobile, recMobile},
	} {
		sf := c.scenario
		if !filepath.IsAbs(sf) {
			if sf, err = filepath.Abs(filepath.Join("..", "..", "gateway", "testdata", "sipp", sf)); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(sipp, n.sipUDP, "-sf", sf, "-m", "1", "-timeout", "30s", "-nostdin", "-s", c.callee,
			"-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret",
			"-i", "127.0.0.1", "-p", sipPort, "-mi", "127.0.0.1", "-mp", freeUDPPort(t))
		cmd.Dir = sdir
		var out []byte
		var sippErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			out, sippErr = cmd.CombinedOutput()
		}()
		// While the call runs: the gateway's view of it.
		var relayed, seen float64
		deadline := time.Now().Add(30 * time.Second)
	poll:
		for time.Now().Before(deadline) {
			select {
			case <-done:
				break poll
			case <-time.After(200 * time.Millisecond):
			}
			calls, _ := status(t, n.dir, n.gwAdmin)["calls"].([]any)
			for _, ci := range calls {
				m, _ := ci.(map[string]any)
				leg, _ := m["sip_leg"].(map[string]any)
				if m["codec"] != c.codec || leg == nil {
					continue
				}
				r, _ := leg["frames_relayed"].(float64)
				got, _ := leg["packets_received"].(float64)
				relayed, seen = max(relayed, r), max(seen, got)
			}
		}
		<-done
		if sippErr != nil {
			t.Fatalf("%s: sipp: %v\n%s", c.name, sippErr, tail(string(out), 3000))
		}
		waitNoActiveCall(t, n.dir, c.p.admin)
		checkHears(t, c.rec, 660, 2*time.Second)
		t.Logf("%s (%s phone): SIP leg received %.0f packets, relayed %.0f frames without decoding", c.name, c.codec, seen, relayed)
		if seen < 25 {
			t.Fatalf("%s: the gateway's status never showed the %s call's packets (saw %.0f)", c.name, c.codec, seen)
		}
		if c.relayed && relayed < seen/2 {
			t.Fatalf("%s: %.0f frames relayed without decoding out of %.0f received; want most", c.name, relayed, seen)
		}
		if !c.relayed && relayed != 0 {
			t.Fatalf("%s: %.0f frames passed without transcoding between PCMA and PCMU", c.name, relayed)
		}
	}
}

// startPhoneArgs is startPhone with extra flags.
func startPhoneArgs(t *testing.T, dir string, srv *accessServer, user, device, pwFile string, o phoneOpts, extra ...string) *phone {
	t.Helper()
	args := []string{"phone", "--access", srv.addr, "--ca", srv.ca, "--user", user, "--device", device,
		"--password-file", pwFile, "--admin", "127.0.0.1:0", "--auto-answer"}
	if o.tone != 0 {
		args = append(args, "--tone", strconv.Itoa(o.tone))
	}
	if o.record != "" {
		args = append(args, "--record", o.record)
	}
	args = append(args, extra...)
	p := start(t, user+"/"+device, dir, args...)
	m := p.waitStdout(t, phoneReady)
	return &phone{proc: p, id: m[1], signal: m[2], admin: m[3]}
}

// writeALaw writes seconds of a hz tone as raw A-law (payload type 8).
func writeALaw(t *testing.T, path string, hz float64, seconds int) {
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
	k, err := codecs.PCMA().Encode(out, pcm)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out[:k], 0o600); err != nil {
		t.Fatal(err)
	}
}
