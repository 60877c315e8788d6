package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
)

// DTMF end to end (issue 8 §3, docs/protocol.md §14, docs/sip.md "DTMF").

var dtmfEventLine = regexp.MustCompile(`call\.dtmf\s+(\S+)\s+(\S+)\s+digit=(\S) duration_ms=(\d+)`)

// startEvents runs `baton ctl events call.dtmf` against admin in the
// background, as a person watching the softphone would.
func startEvents(t *testing.T, dir, admin string) *proc {
	t.Helper()
	p := start(t, "events "+admin, dir, "ctl", "--admin", admin, "events", "call.dtmf")
	time.Sleep(300 * time.Millisecond) // the stream is open before anything is pressed
	return p
}

// waitDigits waits until the events process has printed want digits and
// returns what it printed, line by line, as digits with their peer.
func waitDigits(t *testing.T, ev *proc, want string) (digits string, peers []string, durations []string) {
	t.Helper()
	eventually(t, pollTimeout, "the event stream to show digits "+want, func() (bool, string) {
		var b strings.Builder
		peers, durations = nil, nil
		for _, m := range dtmfEventLine.FindAllStringSubmatch(ev.stdout.String(), -1) {
			b.WriteString(m[3])
			peers = append(peers, m[2])
			durations = append(durations, m[4])
		}
		digits = b.String()
		return len(digits) >= len(want), ev.stdout.String()
	})
	return digits, peers, durations
}

// A sipp desk phone (alice/desk behind the gateway) calls the P2P softphone
// bob and presses 1 # 2 *: RFC 4733 packets replayed from Debian
// sip-tester's pcaps, each digit's end packet three times. bob's event
// stream (`baton ctl events`) shows each digit once, in order, from
// alice/desk.
func TestE2EDTMFSipPhoneToSoftphone(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	const pcaps = "/usr/share/sip-tester"
	n := startGatewayNet(t)
	bob := startPhone(t, n.dir, n.srv, "bob", "laptop", n.pw["bob"], phoneOpts{tone: 440, autoAnswer: true})
	events := startEvents(t, n.dir, bob.admin)

	sdir := t.TempDir()
	for _, d := range []string{"1", "pound", "2", "star"} {
		name := "dtmf_2833_" + d + ".pcap"
		b, err := os.ReadFile(filepath.Join(pcaps, name))
		if err != nil {
			t.Skipf("sip-tester's DTMF pcaps are not installed (%v)", err)
		}
		if err := os.WriteFile(filepath.Join(sdir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret", "-i", "127.0.0.1", "-p", sipPort)
	waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")
	runSipp(t, sipp, sdir, n.sipUDP, "call_dtmf.xml", "-s", "bob", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret",
		"-i", "127.0.0.1", "-p", sipPort, "-mi", "127.0.0.1", "-mp", freeUDPPort(t))

	digits, peers, durs := waitDigits(t, events, "1#2*")
	t.Logf("bob's event stream:\n%s", events.stdout.String())
	if digits != "1#2*" {
		t.Fatalf("bob saw digits %q, want 1#2* (each once, in order)", digits)
	}
	for i, p := range peers {
		if p != "alice/desk" {
			t.Errorf("digit %d from %s, want alice/desk", i, p)
		}
	}
	// The pcaps' events last 2240 timestamp units: 280 ms at 8 kHz.
	for i, d := range durs {
		if d != "280" {
			t.Errorf("digit %d lasted %s ms, want the pcap's 280", i, d)
		}
	}
	waitNoActiveCall(t, n.dir, bob.admin)
	// Nothing more arrives: the repeated end packets were not digits.
	time.Sleep(500 * time.Millisecond)
	if got := len(dtmfEventLine.FindAllString(events.stdout.String(), -1)); got != 4 {
		t.Errorf("bob saw %d digit events, want 4", got)
	}
}

// phoneRTP is the RTP of a SIP phone the test plays itself: a PCMU tone
// every 20 ms to whoever sent to it (the gateway's leg), and every packet
// it gets, with its payload type, for the RFC 4733 check.
type phoneRTP struct {
	conn *net.UDPConn
	done chan struct{}
	wg   sync.WaitGroup

	mu   sync.Mutex
	got  []rtp.Packet
	peer *net.UDPAddr
	keys []byte // digits pressed, not yet sent
}

// press queues digits the phone sends as RFC 4733 events (payload type
// 101) in its stream: 100 ms each, the marker on the first packet, the end
// three times, 60 ms of audio between two.
func (m *phoneRTP) press(digits string) {
	m.mu.Lock()
	m.keys = append(m.keys, digits...)
	m.mu.Unlock()
}

func startPhoneRTP(t *testing.T) *phoneRTP {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	m := &phoneRTP{conn: conn, done: make(chan struct{})}
	tone, err := audio.NewTone(660, 8000, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	m.wg.Add(2)
	go func() {
		defer m.wg.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			var p rtp.Packet
			if p.Unmarshal(append([]byte(nil), buf[:n]...)) != nil {
				continue
			}
			m.mu.Lock()
			if m.peer == nil {
				m.peer = from
			}
			m.got = append(m.got, p)
			m.mu.Unlock()
		}
	}()
	go func() {
		defer m.wg.Done()
		pcm := make([]int16, 160)
		payload := make([]byte, 160)
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 0x0d7f0001}}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var ts uint32
		// the event being sent: its code, start timestamp, frames sent
		code, evTS, frame, gap := -1, uint32(0), 0, 0
		for {
			select {
			case <-m.done:
				return
			case <-tick.C:
			}
			m.mu.Lock()
			peer := m.peer
			if code < 0 && gap == 0 && len(m.keys) > 0 {
				code = strings.IndexByte("0123456789*#ABCD", m.keys[0])
				m.keys = m.keys[1:]
				evTS, frame = ts, 0
			}
			m.mu.Unlock()
			ts += 160
			if peer == nil {
				continue
			}
			pkt.SequenceNumber++
			if code >= 0 {
				// 100 ms: durations 160..640, then 800 with E three times.
				frame++
				dur, end := uint16(160*frame), frame >= 5
				if end {
					dur = 800
				}
				pkt.PayloadType, pkt.Timestamp, pkt.Marker = 101, evTS, frame == 1
				flags := byte(10)
				if end {
					flags |= 0x80
				}
				pkt.Payload = []byte{byte(code), flags, byte(dur >> 8), byte(dur)}
				if frame >= 7 {
					code, gap = -1, 3
				}
			} else {
				if gap > 0 {
					gap--
				}
				_ = tone.ReadFrame(pcm)
				k, _ := codecs.PCMU().Encode(payload, pcm)
				pkt.PayloadType, pkt.Timestamp, pkt.Marker = 0, ts, false
				pkt.Payload = payload[:k]
			}
			if b, err := pkt.Marshal(); err == nil {
				_, _ = conn.WriteToUDP(b, peer)
			}
		}
	}()
	t.Cleanup(m.close)
	return m
}

func (m *phoneRTP) port() int { return m.conn.LocalAddr().(*net.UDPAddr).Port }

func (m *phoneRTP) close() {
	select {
	case <-m.done:
		return
	default:
	}
	close(m.done)
	_ = m.conn.Close()
	m.wg.Wait()
}

func (m *phoneRTP) packets() []rtp.Packet {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]rtp.Packet(nil), m.got...)
}

// rfc4733Event is one event as the phone decoded it from its packets.
type rfc4733Event struct {
	digit      byte
	ts         uint32
	packets    int // packets carrying it
	ends       int // of them with the E bit
	marker     bool
	markerOnly bool // the marker bit is on its first packet only
	duration   uint16
}

// decodeRFC4733 groups the telephone-event packets (payload type pt) of
// one stream by RTP timestamp, the event's identity (RFC 4733 §2.5.2.1),
// independently of the gateway's own code.
func decodeRFC4733(t *testing.T, pkts []rtp.Packet, pt uint8) (events []rfc4733Event, ssrcs map[uint32]bool) {
	t.Helper()
	const digits = "0123456789*#ABCD"
	ssrcs = map[uint32]bool{}
	for _, p := range pkts {
		ssrcs[p.SSRC] = true
		if p.PayloadType != pt {
			continue
		}
		if len(p.Payload) < 4 {
			t.Fatalf("telephone-event payload of %d bytes", len(p.Payload))
		}
		code, end, dur := p.Payload[0], p.Payload[1]&0x80 != 0, binary.BigEndian.Uint16(p.Payload[2:4])
		if int(code) >= len(digits) {
			t.Fatalf("event code %d is not a DTMF digit", code)
		}
		if len(events) == 0 || events[len(events)-1].ts != p.Timestamp {
			events = append(events, rfc4733Event{digit: digits[code], ts: p.Timestamp, marker: p.Marker, markerOnly: true})
		} else if p.Marker {
			events[len(events)-1].markerOnly = false
		}
		e := &events[len(events)-1]
		if e.digit != digits[code] {
			t.Fatalf("event at timestamp %d changes digit %c -> %c", p.Timestamp, e.digit, digits[code])
		}
		e.packets++
		if end {
			e.ends++
		}
		if dur < e.duration {
			t.Errorf("event %c: duration went down %d -> %d", e.digit, e.duration, dur)
		}
		e.duration = dur
	}
	return events, ssrcs
}

// The P2P softphone bob calls alice's SIP desk phone (sipp answering with
// telephone-event, its RTP on the test's socket) through the gateway and
// presses `baton ctl dtmf ID '1#9*'`. The phone gets each digit as RFC
// 4733 packets on the audio stream's SSRC: the first with the marker bit,
// updates, the end three times, all with the event's timestamp, 100 ms
// (800 units) long; then `ctl dtmf` with a bad digit is refused naming it.
func TestE2EDTMFSoftphoneToSipPhone(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startBridgeNet(t)
	bob := startPhone(t, n.dir, n.srv, "bob", "softphone", n.pw["bob"], phoneOpts{tone: 440})
	sdir := t.TempDir()
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.1", "-p", sipPort)
	waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")

	media := startPhoneRTP(t)
	answered := sippServe(t, sipp, sdir, "answer_dtmf_until_bye.xml", "-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(media.port()),
		"-i", "127.0.0.1", "-p", sipPort)
	time.Sleep(500 * time.Millisecond) // sipp binds its port
	id := dial(t, n.dir, bob.admin, "alice/desk")
	waitCallState(t, n.dir, bob.admin, id, "active")
	eventually(t, pollTimeout, "the phone to get audio", func() (bool, string) { return len(media.packets()) > 10, "" })

	r := mustCtl(t, n.dir, bob.admin, "dtmf", id, "1#9*")
	if !strings.Contains(r.stdout, "dtmf 1#9* sent to alice/desk on call "+id+" (100 ms each)") {
		t.Errorf("ctl dtmf printed %q", r.stdout)
	}
	f := ctl(t, n.dir, bob.admin, "dtmf", id, "12x")
	if f.code == 0 || !strings.Contains(f.stderr, "invalid-dtmf") || !strings.Contains(f.stderr, "character 'x' at position 3") {
		t.Errorf("ctl dtmf with a bad digit: exit %d, stderr %q; want invalid-dtmf naming 'x'", f.code, f.stderr)
	}
	var events []rfc4733Event
	var ssrcs map[uint32]bool
	eventually(t, pollTimeout, "the phone to get four RFC 4733 events", func() (bool, string) {
		events, ssrcs = decodeRFC4733(t, media.packets(), 101)
		done := len(events) == 4 && events[3].ends >= 3
		return done, fmt.Sprintf("%+v", events)
	})
	var got []byte
	for _, e := range events {
		got = append(got, e.digit)
		t.Logf("event %c: timestamp %d, %d packets, %d end, marker %v, duration %d", e.digit, e.ts, e.packets, e.ends, e.marker, e.duration)
		if !e.marker || !e.markerOnly {
			t.Errorf("event %c: marker bit first %v, only first %v; want it on the first packet only (RFC 4733 §2.5.1.1)", e.digit, e.marker, e.markerOnly)
		}
		if e.ends != 3 {
			t.Errorf("event %c: %d end packets, want 3 (RFC 4733 §2.5.1.4)", e.digit, e.ends)
		}
		if e.duration != 800 {
			t.Errorf("event %c: duration %d, want 800 (100 ms at 8 kHz)", e.digit, e.duration)
		}
	}
	if string(got) != "1#9*" {
		t.Fatalf("the phone decoded %q, want 1#9*", got)
	}
	if len(ssrcs) != 1 {
		t.Errorf("the phone got %d SSRCs; the events must ride the audio stream's", len(ssrcs))
	}
	mustCtl(t, n.dir, bob.admin, "hangup", id)
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("the desk phone's dialog: %v", err)
		}
	case <-time.After(runTimeout):
		t.Fatal("the desk phone got no BYE")
	}
}

// Two P2P softphones (`baton phone`): `baton ctl dtmf` on the caller shows
// up, digit by digit, in the callee's `baton ctl events`, and back.
func TestE2EDTMFPhoneToPhone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	srv := startAccess(t, "access", dir, data, "127.0.0.1:0")
	pw := addUsers(t, dir, data, "alice", "bob")
	mustBaton(t, dir, "buddy", "add", "alice", "bob", "--data-dir", data)
	alice := startPhone(t, dir, srv, "alice", "laptop", pw["alice"], phoneOpts{tone: 440})
	bob := startPhone(t, dir, srv, "bob", "mobile", pw["bob"], phoneOpts{tone: 660, autoAnswer: true})
	bobEvents := startEvents(t, dir, bob.admin)
	aliceEvents := startEvents(t, dir, alice.admin)
	waitOnlineBuddy(t, dir, alice.admin, "bob/mobile")
	id := dial(t, dir, alice.admin, "bob")
	waitCallState(t, dir, bob.admin, id, "active")

	mustCtl(t, dir, alice.admin, "dtmf", id, "0123456789")
	mustCtl(t, dir, alice.admin, "dtmf", id, "*#ABCD", "--duration", "250")
	digits, peers, durs := waitDigits(t, bobEvents, "0123456789*#ABCD")
	if digits != "0123456789*#ABCD" {
		t.Fatalf("bob saw %q, want 0123456789*#ABCD", digits)
	}
	for i := range peers {
		want := "100"
		if i >= 10 {
			want = "250"
		}
		if peers[i] != "alice/laptop" || durs[i] != want {
			t.Errorf("digit %d: from %s, %s ms; want alice/laptop, %s ms", i, peers[i], durs[i], want)
		}
	}
	mustCtl(t, dir, bob.admin, "dtmf", id, "42")
	if got, _, _ := waitDigits(t, aliceEvents, "42"); got != "42" {
		t.Fatalf("alice saw %q, want 42", got)
	}
	// A call that does not exist, and one that is over, take no digits.
	if f := ctl(t, dir, alice.admin, "dtmf", "c-nope", "1"); f.code == 0 || !strings.Contains(f.stderr, "no-such-call") {
		t.Errorf("ctl dtmf on no call: exit %d, %q", f.code, f.stderr)
	}
	mustCtl(t, dir, alice.admin, "hangup", id)
	waitCallState(t, dir, bob.admin, id, "ended")
	if f := ctl(t, dir, bob.admin, "dtmf", id, "1"); f.code == 0 {
		t.Errorf("ctl dtmf on an ended call succeeded:\n%s", f)
	}
}

// A sipp desk phone configured for SIP INFO DTMF (no telephone-event in its
// offer) presses 5 and # (application/dtmf-relay); the softphone's event
// stream shows 5# with the INFO's 160 ms. The gateway answers a bad signal
// 400 and another body type 415 (the scenario checks both).
func TestE2EDTMFSipInfoToSoftphone(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startGatewayNet(t)
	bob := startPhone(t, n.dir, n.srv, "bob", "laptop", n.pw["bob"], phoneOpts{tone: 440, autoAnswer: true})
	events := startEvents(t, n.dir, bob.admin)
	sdir := t.TempDir()
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret", "-i", "127.0.0.1", "-p", sipPort)
	waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")
	runSipp(t, sipp, sdir, n.sipUDP, "call_info_dtmf.xml", "-s", "bob", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret",
		"-i", "127.0.0.1", "-p", sipPort, "-mi", "127.0.0.1", "-mp", freeUDPPort(t))
	digits, peers, durs := waitDigits(t, events, "5#")
	if digits != "5#" || peers[0] != "alice/desk" || durs[0] != "160" || durs[1] != "160" {
		t.Fatalf("bob saw %q from %v lasting %v, want 5# from alice/desk, 160 ms each\n%s", digits, peers, durs, events.stdout.String())
	}
	waitNoActiveCall(t, n.dir, bob.admin)
}

// The P2P softphone calls a sipp desk phone whose answer has no
// telephone-event; `baton ctl dtmf ID '1#'` reaches it as two SIP INFO
// application/dtmf-relay requests, in order (the scenario checks Signal=1
// then Signal=#, and fails on anything else before the BYE), and the
// gateway's status counts both sent.
func TestE2EDTMFSoftphoneToSipPhoneByInfo(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startBridgeNet(t)
	bob := startPhone(t, n.dir, n.srv, "bob", "softphone", n.pw["bob"], phoneOpts{tone: 440})
	sdir := t.TempDir()
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.1", "-p", sipPort)
	waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")
	media := startPhoneRTP(t)
	answered := sippServe(t, sipp, sdir, "answer_info_dtmf.xml", "-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(media.port()),
		"-i", "127.0.0.1", "-p", sipPort)
	time.Sleep(500 * time.Millisecond) // sipp binds its port
	id := dial(t, n.dir, bob.admin, "alice/desk")
	waitCallState(t, n.dir, bob.admin, id, "active")
	mustCtl(t, n.dir, bob.admin, "dtmf", id, "1#")
	eventually(t, pollTimeout, "the gateway to count two digits sent by INFO", func() (bool, string) {
		st := status(t, n.dir, n.gwAdmin)
		calls, _ := st["calls"].([]any)
		for _, c := range calls {
			leg, _ := c.(map[string]any)["sip_leg"].(map[string]any)
			if leg["dtmf_sent"] == float64(2) {
				return true, ""
			}
		}
		return false, fmt.Sprint(calls)
	})
	mustCtl(t, n.dir, bob.admin, "hangup", id)
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("the desk phone's dialog: %v", err)
		}
	case <-time.After(runTimeout):
		t.Fatal("the desk phone got no BYE")
	}
	for _, p := range media.packets() {
		if p.PayloadType != 0 {
			t.Fatalf("the phone without telephone-event got payload type %d", p.PayloadType)
		}
	}
}

// DTMF follows the call through a handoff, with the far party behind the
// gateway (role C): carol's SIP phone (sipp for the signaling, the test's
// socket for its RTP, with telephone-event) calls alice's laptop and
// presses 1; alice's mobile pulls the call; carol presses 2 and 3, which
// reach the mobile and not the laptop; `ctl dtmf` on the mobile reaches
// carol's phone as an RFC 4733 event. carol's dialog sees no SIP message
// mid-call (the scenario fails on any).
func TestE2EDTMFAfterPullFarPartyBehindGateway(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startBridgeNet(t)
	laptop := startPhone(t, n.dir, n.srv, "alice", "laptop", n.pw["alice"], phoneOpts{tone: 660, autoAnswer: true})
	laptopEvents := startEvents(t, n.dir, laptop.admin)
	sdir := t.TempDir()
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "carol", "-au", "carol", "-ap", "carol-sip-secret", "-i", "127.0.0.1", "-p", sipPort)
	media := startPhoneRTP(t)
	call := make(chan error, 1)
	go func() {
		call <- sippRun(sipp, sdir, n.sipUDP, "call_external_media_dtmf.xml", "-s", "alice", "-key", "deskuser", "carol",
			"-au", "carol", "-ap", "carol-sip-secret", "-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(media.port()),
			"-i", "127.0.0.1", "-p", sipPort)
	}()
	id := waitActiveWith(t, n.dir, laptop.admin, "carol/desk", call)
	media.press("1")
	if got, _, _ := waitDigits(t, laptopEvents, "1"); got != "1" {
		t.Fatalf("the laptop saw %q before the pull, want 1", got)
	}

	mobile := startPhone(t, n.dir, n.srv, "alice", "mobile", n.pw["alice"], phoneOpts{tone: 880})
	mobileEvents := startEvents(t, n.dir, mobile.admin)
	if r := mustCtl(t, n.dir, mobile.admin, "pull", "--from", "laptop"); !strings.Contains(r.stdout, "done") {
		t.Fatalf("ctl pull did not report done:\n%s", r.stdout)
	}
	waitCallState(t, n.dir, mobile.admin, id, "active")
	media.press("23")
	digits, peers, _ := waitDigits(t, mobileEvents, "23")
	if digits != "23" || peers[0] != "carol/desk" {
		t.Fatalf("the mobile saw %q from %v after the pull, want 23 from carol/desk", digits, peers)
	}
	mustCtl(t, n.dir, mobile.admin, "dtmf", id, "#")
	eventually(t, pollTimeout, "carol's phone to get # as RFC 4733", func() (bool, string) {
		evs, _ := decodeRFC4733(t, media.packets(), 101)
		return len(evs) == 1 && evs[0].digit == '#' && evs[0].ends == 3, fmt.Sprintf("%+v", evs)
	})
	if got := len(dtmfEventLine.FindAllString(laptopEvents.stdout.String(), -1)); got != 1 {
		t.Errorf("the laptop saw %d digits, want only the 1 from before the pull:\n%s", got, laptopEvents.stdout.String())
	}
	select {
	case err := <-call:
		if err != nil {
			t.Fatalf("carol's SIP dialog: %v", err)
		}
	case <-time.After(runTimeout):
		t.Fatal("sipp's call did not end")
	}
}

// A full SIP user agent: baresip (alice's desk phone) calls the softphone
// through the gateway and presses 4 2 # (`sndcode`, RFC 4733 from
// baresip's own telephone-event encoder): bob's `ctl events` shows 42#.
// Then bob's `ctl dtmf ID 7*` reaches baresip, which logs each digit it
// decoded ("received event: '7' (end=0)").
func TestE2EDTMFBaresip(t *testing.T) {
	t.Parallel()
	n := startGatewayNet(t)
	bob := startPhone(t, n.dir, n.srv, "bob", "laptop", n.pw["bob"], phoneOpts{tone: 440, autoAnswer: true})
	events := startEvents(t, n.dir, bob.admin)
	bs := startBaresip(t, n.sipUDP, 660)
	waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")
	bs.command(t, "dial", "sip:bob@"+n.sipUDP)
	id := waitActiveWith(t, n.dir, bob.admin, "alice/desk", nil)
	time.Sleep(time.Second) // media flowing both ways
	bs.command(t, "sndcode", "42#")
	digits, peers, durs := waitDigits(t, events, "42#")
	t.Logf("bob's event stream:\n%s", events.stdout.String())
	if digits != "42#" || peers[0] != "alice/desk" {
		t.Fatalf("bob saw %q from %v, want 42# from alice/desk", digits, peers)
	}
	for i, d := range durs {
		if d == "" || d == "0" {
			t.Errorf("digit %d has no duration", i)
		}
	}
	mustCtl(t, n.dir, bob.admin, "dtmf", id, "7*")
	// baresip logs an RFC 4733 event's start as "received event: '7'
	// (end=0)" (and a SIP INFO digit as "call: received DTMF: '7'").
	received := regexp.MustCompile(`received event: '(.)' \(end=0\)|received DTMF: '(.)'`)
	eventually(t, pollTimeout, "baresip to log the digits 7 and *", func() (bool, string) {
		var got []byte
		for _, m := range received.FindAllStringSubmatch(bs.out.String(), -1) {
			got = append(got, (m[1] + m[2])[0])
		}
		return string(got) == "7*", fmt.Sprintf("%q\n%s", got, strings.Join(regexp.MustCompile(`[^\n]*(?:received|DTMF|event)[^\n]*`).FindAllString(bs.out.String(), -1), "\n"))
	})
	mustCtl(t, n.dir, bob.admin, "hangup", id)
	waitNoActiveCall(t, n.dir, bob.admin)
}
