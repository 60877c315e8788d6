package main

import (
	"fmt"
	"math"
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

// Hold and resume end to end (issue 8 §2, docs/protocol.md §17): two real
// `baton phone`s, `baton ctl hold` / `ctl resume`, the events each side
// publishes and what each recorded.

// toneRuns returns the recording's segments, merged into runs of "tone
// hz" and "silence" of at least 100 ms, for logging and checks.
func toneRuns(t *testing.T, path string) []audio.Segment {
	t.Helper()
	var clip *audio.Clip
	eventually(t, 10*time.Second, "a readable recording "+path, func() (bool, string) {
		var err error
		clip, err = audio.ReadWAVFile(path)
		return err == nil, fmt.Sprint(err)
	})
	var runs []audio.Segment
	for _, s := range audio.Segments(clip.Samples, clip.SampleRate, 0, toneCandidates) {
		if n := len(runs); n > 0 && (runs[n-1].Hz == s.Hz || s.Duration() < 100*time.Millisecond) {
			runs[n-1].End = s.End
			continue
		}
		runs = append(runs, s)
	}
	return runs
}

// checkToneSilenceTone asserts a recording is the tone hz, then at least
// minSilence of silence, then the tone again, each tone at least minTone.
func checkToneSilenceTone(t *testing.T, path string, hz float64, minTone, minSilence time.Duration) {
	t.Helper()
	runs := toneRuns(t, path)
	var b strings.Builder
	for _, r := range runs {
		fmt.Fprintf(&b, "  %6s-%6s %4.0f Hz\n", r.Start.Round(10*time.Millisecond), r.End.Round(10*time.Millisecond), r.Hz)
	}
	t.Logf("%s:\n%s", filepath.Base(path), b.String())
	// Find tone, then a long silence, then tone.
	state := 0
	for _, r := range runs {
		switch {
		case state == 0 && math.Abs(r.Hz-hz) < 1 && r.Duration() >= minTone:
			state = 1
		case state == 1 && r.Silent() && r.Duration() >= minSilence:
			state = 2
		case state == 2 && math.Abs(r.Hz-hz) < 1 && r.Duration() >= minTone:
			state = 3
		}
	}
	if state != 3 {
		t.Errorf("%s: want %.0f Hz (>= %s), silence (>= %s), %.0f Hz again; got\n%s", path, hz, minTone, minSilence, hz, b.String())
	}
}

func TestE2EHoldResumeTwoPhones(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := addUsers(t, dir, "data", "alice", "bob")
	mustBaton(t, dir, "buddy", "add", "alice", "bob", "--data-dir", "data")
	srv := startAccess(t, "access", dir, "data", "127.0.0.1:0")
	aliceWAV, bobWAV := filepath.Join(dir, "alice.wav"), filepath.Join(dir, "bob.wav")
	alice := startPhone(t, dir, srv, "alice", "laptop", pw["alice"], phoneOpts{tone: 660, record: aliceWAV})
	bob := startPhone(t, dir, srv, "bob", "mobile", pw["bob"], phoneOpts{tone: 440, record: bobWAV, autoAnswer: true})
	waitOnlineBuddy(t, dir, alice.admin, "bob/mobile")
	events := start(t, "events "+bob.admin, dir, "ctl", "--admin", bob.admin, "events", "call.")
	time.Sleep(300 * time.Millisecond) // the stream is open before anything happens

	id := dial(t, dir, alice.admin, "bob/mobile")
	waitCallState(t, dir, bob.admin, id, "active")
	time.Sleep(1500 * time.Millisecond)

	r := mustCtl(t, dir, alice.admin, "hold", id)
	if want := "call " + id + " with bob/mobile: direction sendonly, held by local"; !strings.Contains(r.stdout, want) {
		t.Errorf("ctl hold printed %q, want %q", r.stdout, want)
	}
	eventually(t, pollTimeout, "bob's call.held event", func() (bool, string) {
		out := events.stdout.String()
		return strings.Contains(out, "call.held") && strings.Contains(out, "by=remote direction=recvonly"), out
	})
	// Nothing is received either way while held.
	time.Sleep(200 * time.Millisecond)
	a0, b0 := packetsReceived(t, callRow(t, dir, alice.admin, id)), packetsReceived(t, callRow(t, dir, bob.admin, id))
	time.Sleep(2 * time.Second)
	a1, b1 := packetsReceived(t, callRow(t, dir, alice.admin, id)), packetsReceived(t, callRow(t, dir, bob.admin, id))
	if a1 != a0 || b1 != b0 {
		t.Errorf("packets received while held: alice %d, bob %d, want none", a1-a0, b1-b0)
	}
	// A second ctl hold changes nothing; resume at the other side is not
	// possible for what alice holds: bob resuming only ends bob's own hold.
	mustCtl(t, dir, alice.admin, "hold", id)

	r = mustCtl(t, dir, alice.admin, "resume", id)
	if want := "direction sendrecv, held by nobody"; !strings.Contains(r.stdout, want) {
		t.Errorf("ctl resume printed %q, want %q", r.stdout, want)
	}
	eventually(t, pollTimeout, "bob's call.resumed event", func() (bool, string) {
		out := events.stdout.String()
		return strings.Contains(out, "call.resumed"), out
	})
	eventually(t, pollTimeout, "audio both ways again", func() (bool, string) {
		ar, br := callRow(t, dir, alice.admin, id), callRow(t, dir, bob.admin, id)
		return packetsReceived(t, ar) > a1+20 && packetsReceived(t, br) > b1+20, fmt.Sprint(ar, br)
	})
	time.Sleep(1500 * time.Millisecond)
	mustCtl(t, dir, alice.admin, "hangup", id)
	waitCallState(t, dir, bob.admin, id, "ended")
	waitCallState(t, dir, alice.admin, id, "ended")
	t.Logf("bob's events:\n%s", events.stdout.String())

	checkToneSilenceTone(t, bobWAV, 660, 800*time.Millisecond, 1500*time.Millisecond)
	checkToneSilenceTone(t, aliceWAV, 440, 800*time.Millisecond, 1500*time.Millisecond)

	// Hold of no call, and of an ended one, is refused with a clear error.
	if r := ctl(t, dir, alice.admin, "hold", "c-nope"); r.code == 0 || !strings.Contains(r.stderr, "no-such-call") {
		t.Errorf("ctl hold of no call:\n%s", r)
	}
}

// soundingBetween counts the packets a SIP party heard between from and
// to whose PCMU payload is not silence.
func (m *sipMedia) soundingBetween(from, to time.Time) (sounding, all int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	frame := make([]int16, 160)
	for _, p := range m.got {
		if p.at.Before(from) || p.at.After(to) {
			continue
		}
		all++
		n, err := codecs.PCMU().Decode(frame, p.payload)
		if err != nil {
			continue
		}
		var sum float64
		for _, s := range frame[:n] {
			sum += float64(s) * float64(s)
		}
		if math.Sqrt(sum/float64(max(n, 1))) > 300 {
			sounding++
		}
	}
	return sounding, all
}

// startSipp runs a sipp scenario in the background; wait returns its
// error (nil when the scenario passed) with its output.
func startSipp(t *testing.T, sipp, dir, target, scenario string, args ...string) (wait func() error) {
	t.Helper()
	sf, err := filepath.Abs(filepath.Join("..", "..", "gateway", "testdata", "sipp", scenario))
	if err != nil {
		t.Fatal(err)
	}
	errFile := filepath.Join(dir, scenario+".errors")
	argv := append([]string{target, "-sf", sf, "-m", "1", "-timeout", "90s", "-nostdin", "-trace_err", "-error_file", errFile}, args...)
	cmd := exec.Command(sipp, argv...)
	cmd.Dir = dir
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return func() error {
		select {
		case err := <-done:
			done <- err
			if err != nil {
				errs, _ := os.ReadFile(errFile)
				return fmt.Errorf("sipp %s: %w\n%s\nerrors:\n%s", scenario, err, tail(out.String(), 3000), errs)
			}
			return nil
		case <-time.After(2 * time.Minute):
			return fmt.Errorf("sipp %s did not finish", scenario)
		}
	}
}

// Issue 8 §2, the SIP phone holds: alice's desk phone (sipp, call_hold.xml,
// its RTP the test's sockets) calls bob's softphone through the gateway and
// holds with a re-INVITE a=sendonly, then resumes from a second port. The
// gateway passes both on as media-updates: bob's event stream shows
// call.held (by the remote party, bob recvonly) and call.resumed; bob hears
// the desk's first tone, silence while held (the gateway relays no music
// on hold), then the second tone.
func TestE2EGatewaySIPPhoneHoldsP2P(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startGatewayNet(t)
	rec := filepath.Join(n.dir, "bob.wav")
	bob := startPhone(t, n.dir, n.srv, "bob", "laptop", n.pw["bob"], phoneOpts{tone: 440, record: rec, autoAnswer: true})
	events := start(t, "events "+bob.admin, n.dir, "ctl", "--admin", bob.admin, "events", "call.")
	sdir := t.TempDir()
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret", "-i", "127.0.0.1", "-p", sipPort)
	waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")

	first := startSIPMedia(t, "127.0.0.1", 660)
	second := startSIPMedia(t, "127.0.0.1", 880)
	runSipp(t, sipp, sdir, n.sipUDP, "call_hold.xml", "-s", "bob", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret",
		"-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(first.addr().Port), "-key", "rtpport2", fmt.Sprint(second.addr().Port),
		"-i", "127.0.0.1", "-p", sipPort)
	waitNoActiveCall(t, n.dir, bob.admin)
	first.close()
	second.close()
	out := events.stdout.String()
	t.Logf("bob's events:\n%s", out)
	held, resumed := strings.Index(out, "call.held"), strings.Index(out, "call.resumed")
	if held < 0 || resumed < held || !strings.Contains(out, "by=remote direction=recvonly held_by=remote") {
		t.Errorf("bob's events show no call.held by the remote party (recvonly) followed by call.resumed")
	}
	runs := toneRuns(t, rec)
	var order []string
	for _, r := range runs {
		switch {
		case r.Silent() && r.Duration() >= 2*time.Second:
			order = append(order, "silence")
		case !r.Silent() && r.Duration() >= 500*time.Millisecond:
			order = append(order, fmt.Sprint(r.Hz))
		}
	}
	t.Logf("bob heard: %v", order)
	if got := strings.Join(order, " "); !strings.Contains(got, "660 silence 880") {
		t.Errorf("bob heard %q, want 660 Hz, at least 2 s of silence (the 3 s hold), 880 Hz", got)
	}
}

// Issue 8 §2, the P2P party holds: alice's desk phone (sipp,
// call_p2p_hold.xml) calls bob's softphone; bob runs `ctl hold` and later
// `ctl resume`. The gateway re-INVITEs the phone a=sendonly (the scenario
// checks it and answers a=recvonly), then a=sendrecv, the o= version one
// up each time (RFC 3264 §8). The desk hears bob's tone, then silence while
// held, then the tone again; bob hears the desk likewise.
func TestE2EGatewayP2PHoldsSIPPhone(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startGatewayNet(t)
	rec := filepath.Join(n.dir, "bob.wav")
	bob := startPhone(t, n.dir, n.srv, "bob", "laptop", n.pw["bob"], phoneOpts{tone: 440, record: rec, autoAnswer: true})
	sdir := t.TempDir()
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret", "-i", "127.0.0.1", "-p", sipPort)
	waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")

	desk := startSIPMedia(t, "127.0.0.1", 660)
	trace := filepath.Join(sdir, "p2phold.messages")
	wait := startSipp(t, sipp, sdir, n.sipUDP, "call_p2p_hold.xml", "-s", "bob", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret",
		"-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(desk.addr().Port), "-i", "127.0.0.1", "-p", sipPort,
		"-trace_msg", "-message_file", trace)
	var id string
	eventually(t, pollTimeout, "bob's call to be active", func() (bool, string) {
		r := ctl(t, n.dir, bob.admin, "calls")
		for _, row := range table(t, r.stdout) {
			if row["STATE"] == "active" {
				id = row["ID"]
				return true, ""
			}
		}
		return false, r.stdout
	})
	time.Sleep(1500 * time.Millisecond)
	r := mustCtl(t, n.dir, bob.admin, "hold", id)
	if !strings.Contains(r.stdout, "direction sendonly, held by local") {
		t.Errorf("ctl hold printed %q", r.stdout)
	}
	heldAt := time.Now()
	time.Sleep(2500 * time.Millisecond)
	resumeAt := time.Now()
	mustCtl(t, n.dir, bob.admin, "resume", id)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	waitNoActiveCall(t, n.dir, bob.admin)
	desk.close()

	// The gateway's re-INVITEs: a=sendonly, then a=sendrecv, o= +1 each.
	var dirs []string
	var versions []uint64
	for _, m := range readSippTrace(t, trace) {
		if !m.received || !strings.HasPrefix(m.text, "INVITE ") {
			continue
		}
		o := sdpOrigin.FindStringSubmatch(m.text)
		d := sdpDir.FindStringSubmatch(m.text)
		if o == nil || d == nil {
			t.Fatalf("re-INVITE without o= or a= direction:\n%s", m.text)
		}
		v, _ := strconv.ParseUint(o[1], 10, 64)
		dirs, versions = append(dirs, d[1]), append(versions, v)
	}
	t.Logf("the gateway's re-INVITEs: directions %v, o= versions %v", dirs, versions)
	if strings.Join(dirs, ",") != "sendonly,sendrecv" || len(versions) != 2 || versions[1] != versions[0]+1 {
		t.Errorf("re-INVITEs %v with versions %v, want sendonly then sendrecv, o= version +1", dirs, versions)
	}

	// The desk heard no tone while held (from 500 ms after ctl hold, for
	// the re-INVITE's round trip, to ctl resume), and the tone before and
	// after.
	sounding, all := desk.soundingBetween(heldAt.Add(500*time.Millisecond), resumeAt)
	before, _ := desk.soundingBetween(heldAt.Add(-time.Second), heldAt)
	after, _ := desk.soundingBetween(resumeAt.Add(300*time.Millisecond), resumeAt.Add(1300*time.Millisecond))
	t.Logf("desk: %d sounding packets in the second before hold, %d of %d while held, %d in the second after resume", before, sounding, all, after)
	if sounding != 0 || before < 25 || after < 25 {
		t.Errorf("desk heard %d sounding packets while held (want 0), %d before and %d after (want 25 or more)", sounding, before, after)
	}
	checkToneSilenceTone(t, rec, 660, 800*time.Millisecond, 1500*time.Millisecond)
}
