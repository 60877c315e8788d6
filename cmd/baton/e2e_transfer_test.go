package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
)

// sipMedia is the RTP side of a SIP party the test plays itself: it sends
// a PCMU tone every 20 ms to whoever sends to it (symmetric RTP, as the
// gateway's leg expects) and records every packet it receives.
type sipMedia struct {
	conn *net.UDPConn
	done chan struct{}
	wg   sync.WaitGroup

	mu   sync.Mutex
	got  []heardPacket
	peer *net.UDPAddr
}

type heardPacket struct {
	at      time.Time
	ssrc    uint32
	seq     uint16
	ts      uint32
	payload []byte
}

func startSIPMedia(t *testing.T, ip string, hz float64) *sipMedia {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	m := &sipMedia{conn: conn, done: make(chan struct{})}
	tone, err := audio.NewTone(hz, 8000, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	m.wg.Add(2)
	go m.receive()
	go m.send(tone)
	t.Cleanup(m.close)
	return m
}

func (m *sipMedia) addr() *net.UDPAddr { return m.conn.LocalAddr().(*net.UDPAddr) }

func (m *sipMedia) close() {
	select {
	case <-m.done:
		return
	default:
	}
	close(m.done)
	_ = m.conn.Close()
	m.wg.Wait()
}

func (m *sipMedia) receive() {
	defer m.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := m.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		var p rtp.Packet
		if p.Unmarshal(buf[:n]) != nil {
			continue
		}
		m.mu.Lock()
		if m.peer == nil {
			m.peer = from
		}
		m.got = append(m.got, heardPacket{at: time.Now(), ssrc: p.SSRC, seq: p.SequenceNumber, ts: p.Timestamp,
			payload: append([]byte(nil), p.Payload...)})
		m.mu.Unlock()
	}
}

func (m *sipMedia) send(tone *audio.Tone) {
	defer m.wg.Done()
	pcm := make([]int16, 160)
	payload := make([]byte, 160)
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 0x5eed1e55}}
	buf := make([]byte, 1500)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-tick.C:
		}
		m.mu.Lock()
		peer := m.peer
		m.mu.Unlock()
		if peer == nil {
			continue // the gateway's leg latches on what it hears; wait for it
		}
		_ = tone.ReadFrame(pcm)
		n, _ := codecs.PCMU().Encode(payload, pcm)
		pkt.Payload = payload[:n]
		pkt.SequenceNumber++
		pkt.Timestamp += 160
		if w, err := pkt.MarshalTo(buf); err == nil {
			_, _ = m.conn.WriteToUDP(buf[:w], peer)
		}
	}
}

// heardReport is what the SIP party's recording says about the call.
type heardReport struct {
	packets, lost, ssrcs int
	tsJumps              int           // timestamp steps other than 160 per sequence number
	maxGap               time.Duration // longest silence between arrivals
	tones                []string      // the tone of each second-long stretch
}

func (m *sipMedia) report() heardReport {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := heardReport{packets: len(m.got)}
	seen := map[uint32]bool{}
	for i, p := range m.got {
		seen[p.ssrc] = true
		if i == 0 {
			continue
		}
		prev := m.got[i-1]
		if d := p.seq - prev.seq; p.ssrc == prev.ssrc && d > 1 && d < 1000 {
			r.lost += int(d - 1)
		}
		if d := p.seq - prev.seq; p.ssrc == prev.ssrc && p.ts-prev.ts != uint32(d)*160 {
			r.tsJumps++
		}
		if g := p.at.Sub(prev.at); g > r.maxGap {
			r.maxGap = g
		}
	}
	r.ssrcs = len(seen)
	return r
}

// pcm decodes everything heard, in arrival order.
func (m *sipMedia) pcm() []int16 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int16
	frame := make([]int16, 160)
	for _, p := range m.got {
		n, err := codecs.PCMU().Decode(frame, p.payload)
		if err != nil {
			continue
		}
		out = append(out, frame[:n]...)
	}
	return out
}

// bridgeNet is an access server, users alice (P2P softphones) and carol
// (a SIP party behind the gateway), buddies, and `baton gateway` with
// carol's SIP account carol/desk.
type bridgeNet struct {
	dir     string
	srv     *accessServer
	gw      *proc
	sipUDP  string
	gwAdmin string
	pw      map[string]string
}

func startBridgeNet(t *testing.T) *bridgeNet {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	srv := startAccess(t, "access", dir, data, "127.0.0.1:0")
	pw := addUsers(t, dir, data, "alice", "carol")
	mustBaton(t, dir, "buddy", "add", "alice", "carol", "--data-dir", data)
	sipPw := writeFile(t, dir, "carol-sip.pw", "carol-sip-secret\n")
	ha1 := strings.TrimSpace(mustBaton(t, dir, "gateway", "ha1", "--user", "carol", "--realm", "baton", "--password-file", sipPw).stdout)
	cfg := writeFile(t, dir, "gateway.yaml", fmt.Sprintf(`access: %s
ca: %s
sip:
  udp: 127.0.0.1:0
  tcp: ""
  realm: baton
accounts:
  - sip_user: carol
    ha1: %s
    device: carol/desk
    password_file: %s
`, srv.addr, srv.ca, ha1, pw["carol"]))
	gw := start(t, "gateway", dir, "gateway", "--config", cfg)
	m := gw.waitStdout(t, gatewayReady)
	return &bridgeNet{dir: dir, srv: srv, gw: gw, sipUDP: m[1], gwAdmin: m[4], pw: pw}
}

// Issue 9 §1, role C: the far party is behind the gateway. carol's SIP
// phone (sipp for the signaling, the test's own socket for its RTP) calls
// alice's laptop softphone; alice's mobile pulls the call. The gateway, as
// C, switches its anchored media from the laptop's stream to the mobile's
// and sends nothing toward SIP: the sipp scenario fails on any message it
// does not expect (a re-INVITE, UPDATE or BYE mid-call), and carol's RTP
// keeps one SSRC with no sequence number missing. What carol hears is the
// laptop's tone, then the mobile's; what the mobile hears is carol's.
func TestE2EBridgePullFarPartyBehindGateway(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startBridgeNet(t)
	laptopRec := filepath.Join(n.dir, "laptop.wav")
	mobileRec := filepath.Join(n.dir, "mobile.wav")
	laptop := startPhone(t, n.dir, n.srv, "alice", "laptop", n.pw["alice"], phoneOpts{tone: 660, record: laptopRec, autoAnswer: true})

	sdir := t.TempDir()
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "carol", "-au", "carol", "-ap", "carol-sip-secret", "-i", "127.0.0.1", "-p", sipPort)

	media := startSIPMedia(t, "127.0.0.1", 440)
	call := make(chan error, 1)
	go func() {
		call <- sippRun(sipp, sdir, n.sipUDP, "call_external_media.xml", "-s", "alice", "-key", "deskuser", "carol",
			"-au", "carol", "-ap", "carol-sip-secret", "-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(media.addr().Port),
			"-i", "127.0.0.1", "-p", sipPort)
	}()
	var id string
	eventually(t, pollTimeout, "the laptop's call with carol/desk to be active", func() (bool, string) {
		select {
		case err := <-call:
			t.Fatalf("carol's call ended before it was answered: %v", err)
		default:
		}
		r := ctl(t, n.dir, laptop.admin, "calls")
		for _, row := range table(t, r.stdout) {
			if row["STATE"] == "active" && row["PEER"] == "carol/desk" {
				id = row["ID"]
				return true, ""
			}
		}
		return false, r.stdout
	})
	time.Sleep(2 * time.Second) // carol hears the laptop for a while

	mobile := startPhone(t, n.dir, n.srv, "alice", "mobile", n.pw["alice"], phoneOpts{tone: 880, record: mobileRec})
	r := mustCtl(t, n.dir, mobile.admin, "pull", "--from", "laptop")
	if !strings.Contains(r.stdout, "done") {
		t.Fatalf("ctl pull did not report done:\n%s", r.stdout)
	}
	if row := waitCallState(t, n.dir, laptop.admin, id, "ended"); !strings.HasPrefix(row["INFO"], "handed off to alice/mobile") {
		t.Errorf("the laptop's call ended with %q", row["INFO"])
	}
	waitCallState(t, n.dir, mobile.admin, id, "active")

	// sipp hangs up after its 10 s; any message from the gateway before
	// that fails it.
	select {
	case err := <-call:
		if err != nil {
			t.Fatalf("carol's SIP dialog saw something during the pull: %v", err)
		}
	case <-time.After(runTimeout):
		t.Fatal("sipp's call did not end")
	}
	waitCallState(t, n.dir, mobile.admin, id, "ended")
	media.close()

	rep := media.report()
	t.Logf("carol heard %d packets, %d lost, %d SSRCs, %d timestamp jumps, longest gap %v", rep.packets, rep.lost, rep.ssrcs, rep.tsJumps, rep.maxGap)
	if rep.packets < 300 {
		t.Errorf("carol heard only %d packets in a 10 s call", rep.packets)
	}
	if rep.ssrcs != 1 {
		t.Errorf("carol's RTP changed SSRC during the pull: %d SSRCs", rep.ssrcs)
	}
	if rep.lost != 0 {
		t.Errorf("carol's RTP lost %d sequence numbers during the pull", rep.lost)
	}
	if rep.tsJumps != 0 {
		t.Errorf("carol's RTP timestamps did not follow the sequence numbers %d times", rep.tsJumps)
	}
	order, gap := heardToneOrder(media.pcm())
	t.Logf("carol heard tones %v, longest silence between them %v", order, gap)
	if len(order) < 2 || order[0] != 660 || order[len(order)-1] != 880 {
		t.Errorf("carol heard %v, want the laptop's 660 Hz then the mobile's 880 Hz", order)
	}
	// The design's bound for the audio gap at C during a handoff: a few
	// packet times (docs/handoff.md). Silence between the two tones is
	// what carol heard of the switch.
	if gap > 200*time.Millisecond {
		t.Errorf("carol heard %v of silence between the laptop and the mobile", gap)
	}
	checkHears(t, mobileRec, 440, time.Second)
	checkHears(t, laptopRec, 440, time.Second)
}

// sippRun runs one scenario like runSipp, returning its failure instead of
// failing the test (for a scenario run beside the test's own steps).
func sippRun(sipp, dir, target, scenario string, args ...string) error {
	sf, err := filepath.Abs(filepath.Join("..", "..", "gateway", "testdata", "sipp", scenario))
	if err != nil {
		return err
	}
	errFile := filepath.Join(dir, scenario+".errors")
	argv := append([]string{target, "-sf", sf, "-m", "1", "-timeout", "60s", "-nostdin", "-trace_err", "-error_file", errFile}, args...)
	cmd := exec.Command(sipp, argv...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		errs, _ := os.ReadFile(errFile)
		return fmt.Errorf("sipp %s: %w\n%s\nerrors:\n%s", scenario, err, tail(string(out), 3000), errs)
	}
	return nil
}

// heardToneOrder classifies pcm (8 kHz) in 20 ms frames and returns the
// sequence of distinct tones heard, and the longest run of silent or
// unclassified frames between two sounding ones.
func heardToneOrder(pcm []int16) ([]float64, time.Duration) {
	var order []float64
	var gap, run time.Duration
	sounding := false
	for _, s := range audio.Segments(pcm, 8000, 0, toneCandidates) {
		if s.Silent() {
			if sounding {
				run += s.Duration()
			}
			continue
		}
		if run > gap {
			gap = run
		}
		run = 0
		sounding = true
		if len(order) == 0 || order[len(order)-1] != s.Hz {
			order = append(order, s.Hz)
		}
	}
	return order, gap
}
