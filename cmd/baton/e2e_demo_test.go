package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `baton demo` as a user would: bob calls alice, her desk
// answers, her laptop pulls the call and then moves to another address;
// then the SIP part: a PSTN caller on a simulated trunk reaches a
// softphone, and the softphone calls the built-in SIP desk phone; then the
// story of issue 9 §5: a trunk caller reaches alice's SIP desk phone, her
// softphone pulls the call, pushes it back, and the desk phone
// blind-transfers it to bob with REFER. Each move's report must say the
// caller lost 0 frames and heard the right party, no SIP message reached
// the trunk during the moves, and each move's ladder (SVG) must be
// well-formed XML holding its messages in time order.
// Every functional check must pass and the recordings must show who heard
// whom; speed targets are reported only (--check-targets=false): speed is
// measured by benchmarks, not asserted in tests. An invalid duration must
// be refused with a message naming the key.
func TestDemo(t *testing.T) {
	t.Parallel()
	t.Run("passes", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		out := filepath.Join(dir, "out")
		r := mustBaton(t, dir, "demo", "--duration", "3s", "--check-targets=false", "--out-dir", out)
		if !strings.Contains(r.stdout, "demo passed") {
			t.Fatalf("demo did not print \"demo passed\":\n%s", r)
		}
		for _, want := range []string{"handoff.step 1 ", "handoff.step 12", "all twelve steps happened, in order", "bob never saw a termination"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("demo output lacks %q", want)
			}
		}
		order, _, err := toneOrder(filepath.Join(out, "bob-mobile.wav"), []float64{440, 660, 880})
		if err != nil || order != "660,880" {
			t.Errorf("bob heard %q (%v), want the desk's 660 Hz then the laptop's 880 Hz", order, err)
		}
		for _, c := range []struct {
			file string
			hz   float64
		}{
			{"alice-desk.wav", 440},   // the desk hears bob, the caller
			{"alice-laptop.wav", 440}, // so does the laptop after the pull
		} {
			path := filepath.Join(out, c.file)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatalf("recording missing: %v\n%s", err, r)
			}
			// 2 s of 8 kHz 16-bit mono is 32000 bytes of data; a bare
			// header is 44.
			if fi.Size() < 8000 {
				t.Errorf("%s is %d bytes, want at least half a second of audio", c.file, fi.Size())
			}
			checkHears(t, path, c.hz, 500*time.Millisecond)
		}
		// The SIP part: the PSTN caller on the simulated trunk reached
		// bob/laptop, and bob/laptop called carol's built-in desk phone;
		// each recording holds the other side's tone.
		for _, want := range []string{"came in through trunk pstn as pstn/trunk1", "rang the SIP desk phone, which answered", "gateway.listening", "sip.registered"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("demo output lacks the SIP part's %q", want)
			}
		}
		for _, c := range []struct {
			file string
			hz   float64
		}{
			{"bob-laptop-with-pstn-trunk1.wav", 770}, // bob hears the PSTN caller
			{"pstn-caller.wav", 440},                 // the PSTN caller hears bob
			{"bob-laptop-with-carol-desk.wav", 550},  // bob hears carol's desk phone
			{"carol-deskphone.wav", 440},             // the desk phone hears bob
		} {
			checkHears(t, filepath.Join(out, c.file), c.hz, 500*time.Millisecond)
		}
		// The story: per move, what the caller heard and a ladder.
		for _, want := range []string{"The story (a trunk call", "[ok  ] the caller's RTP across all four moves: one SSRC, 0 frames lost",
			"[ok  ] alice's desk phone: BYE after the pull, INVITE for the push, REFER + 202 then BYE for the transfer"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("demo output lacks the story's %q", want)
			}
		}
		heardLines := 0
		for _, l := range strings.Split(r.stdout, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "the caller heard: ") {
				heardLines++
				if !strings.Contains(l, " 0 lost, 1 SSRC(s), 0 timestamp jumps") {
					t.Errorf("a move's caller report is not 0 lost on one SSRC: %s", l)
				}
			}
		}
		if heardLines != 4 {
			t.Errorf("%d per-move caller reports, want 4 (call, pull, push, transfer)", heardLines)
		}
		for _, m := range []struct {
			name, heard string
			want        []string // rows the ladder must hold, in this order
		}{
			{"1-call", "660", []string{"INVITE", "200 OK (INVITE)", "ACK"}},
			{"2-pull", "880", []string{"step 2: ", "step 3: ", "step 5: ", "step 12: ", "BYE", "200 OK (BYE)"}},
			{"3-push", "660", []string{"INVITE", "200 OK (INVITE)", "step 5: ", "step 12: "}},
			{"4-transfer", "440", []string{"REFER", "202 Accepted (REFER)", "P2P call.ringing (from alice/sipdesk)", "BYE"}},
		} {
			move := strings.SplitN(m.name, "-", 2)[1]
			for _, want := range []string{"move " + m.name[:1] + " (" + move + "): the caller lost 0 frames", "move " + m.name[:1] + " (" + move + "): the caller then heard " + m.heard + " Hz"} {
				if !strings.Contains(r.stdout, "[ok  ] "+want) {
					t.Errorf("demo output lacks the check %q", want)
				}
			}
			if move != "call" && !strings.Contains(r.stdout, "[ok  ] move "+m.name[:1]+" ("+move+"): no SIP message reached the trunk (0)") {
				t.Errorf("move %s: the trunk saw SIP messages, or the check is missing", m.name)
			}
			svg, err := os.ReadFile(filepath.Join(out, "ladder-"+m.name+".svg"))
			if err != nil {
				t.Errorf("ladder missing: %v", err)
				continue
			}
			ats, rows, texts := svgRows(t, svg)
			for i := 1; i < len(ats); i++ {
				if ats[i] < ats[i-1] {
					t.Errorf("ladder %s: row %d (%q) is earlier than the row before it", m.name, i, rows[i])
				}
			}
			if !containsRowsInOrder(rows, m.want) {
				t.Errorf("ladder %s lacks, in order, %q; rows:\n%s", m.name, m.want, strings.Join(rows, "\n"))
			}
			for _, col := range []string{"PSTN caller", "gateway", "alice's SIP desk phone", "alice/softphone", "bob/laptop"} {
				if !strings.Contains(strings.Join(texts, "\n"), col) {
					t.Errorf("ladder %s has no column %q", m.name, col)
				}
			}
		}
		// The caller heard the desk phone, the softphone, the desk phone
		// again, then bob; everyone who had the call heard the caller.
		order, _, err = toneOrder(filepath.Join(out, "pstn-caller-story.wav"), []float64{440, 550, 660, 770, 880})
		if err != nil || order != "660,880,660,440" {
			t.Errorf("the story's caller heard %q (%v), want 660,880,660,440 (desk, softphone, desk, bob)", order, err)
		}
		for _, f := range []string{"alice-sipdesk-1.wav", "alice-softphone.wav", "alice-sipdesk-2.wav", "bob-laptop-with-alice-sipdesk.wav"} {
			checkHears(t, filepath.Join(out, f), 770, 500*time.Millisecond)
		}
		if _, err := os.Stat(filepath.Join(out, "access-data")); !os.IsNotExist(err) {
			t.Errorf("demo left its access data behind without keep_data (stat: %v)", err)
		}
	})
	t.Run("without the SIP part", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		out := filepath.Join(dir, "out")
		r := mustBaton(t, dir, "demo", "--duration", "1s", "--check-targets=false", "--sip=false", "--out-dir", out)
		if !strings.Contains(r.stdout, "demo passed") || strings.Contains(r.stdout, "SIP part") {
			t.Fatalf("demo --sip=false: want a pass without the SIP part:\n%s", r)
		}
		for _, f := range []string{"pstn-caller.wav", "ladder-2-pull.svg"} {
			if _, err := os.Stat(filepath.Join(out, f)); !os.IsNotExist(err) {
				t.Errorf("demo --sip=false wrote the SIP part's %s (stat: %v)", f, err)
			}
		}
	})
	t.Run("invalid duration", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		failBaton(t, dir, []string{"duration", `"0s"`}, "demo", "--duration", "0s", "--out-dir", filepath.Join(dir, "out"))
	})
}

// containsRowsInOrder reports whether each of want is contained in a row
// of rows, in order.
func containsRowsInOrder(rows, want []string) bool {
	i := 0
	for _, r := range rows {
		if i < len(want) && strings.Contains(r, want[i]) {
			i++
		}
	}
	return i == len(want)
}
