package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/access"
	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/sipbridge"
	"github.com/baton-voice/baton/sipbridge/sdp"
)

// trunkIP is where the test's SIP provider sends from: the gateway knows
// a trunk's calls by their source address (Trunk.Allow), so the provider
// must not share 127.0.0.1 with the desk phones.
var trunkIP = netip.MustParseAddr("127.0.0.6")

// toneAmp is the amplitude of every tone the test's parties play; a frame
// the trunk receives is "real" audio when it is that loud (see realFrame).
const toneAmp = 0.3

// trunkNet is an access server with users (each a desk phone through the
// gateway and a P2P softphone) and the trunk's user pstn; a gateway with
// the users' SIP accounts, the pickup code *8 and trunk "pstn" (calls
// from trunkIP, number +1555000NNN to user NNN's laptop).
type trunkNet struct {
	srv   *access.Server
	gw    *Gateway
	users []string
}

// waitTrunkOnline waits for the gateway's "pstn" trunk to be registered.
func (tn *trunkNet) waitTrunkOnline(t *testing.T) {
	t.Helper()
	eventually(t, "the trunk online", func() bool {
		for _, s := range tn.gw.Trunks() {
			if s.Name == "pstn" && s.Online {
				return true
			}
		}
		return false
	})
}

func newTrunkNet(t *testing.T, users int) *trunkNet {
	t.Helper()
	ctx := context.Background()
	srv, err := access.NewServer(ctx, access.Config{DataDir: t.TempDir(), ServerNames: []string{"127.0.0.1"}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(sctx, ln) }()
	t.Cleanup(func() { cancel(); <-done; _ = srv.Close() })
	if err := srv.Users().AddUser(ctx, "pstn", "pstn-p2p-secret"); err != nil {
		t.Fatal(err)
	}
	n := &trunkNet{srv: srv}
	numbers := map[string]string{}
	var accounts []Account
	for i := range users {
		u := fmt.Sprintf("u%03d", i)
		n.users = append(n.users, u)
		if err := srv.Users().AddUser(ctx, u, u+"-p2p-secret"); err != nil {
			t.Fatal(err)
		}
		if err := srv.Users().AddBuddy(ctx, u, "pstn"); err != nil {
			t.Fatal(err)
		}
		numbers[trunkNumber(i)] = u + "/laptop"
		accounts = append(accounts, Account{SIPUser: u, HA1: sipbridge.HA1(u, "baton.test", u+"-desk-secret"), User: u, Device: "desk", Password: u + "-p2p-secret"})
	}
	gw, err := New(Config{
		Access: ln.Addr().String(), Roots: srv.CA().Pool(),
		UDP: "127.0.0.1:0", MediaIP: netip.MustParseAddr("127.0.0.1"), SRTP: true, Realm: "baton.test",
		Accounts: accounts, PickupCode: "*8",
		Trunks: []Trunk{{Name: "pstn", User: "pstn", Device: "trunk1", Password: "pstn-p2p-secret",
			Allow: []netip.Prefix{netip.PrefixFrom(trunkIP, 32)}, Numbers: numbers}},
		Logger: testLogger(t).With("part", "gateway"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Close() })
	n.gw = gw
	return n
}

func trunkNumber(i int) string { return fmt.Sprintf("+1555000%03d", i) }

// softphone starts user's P2P softphone (auto-answer, a tone of hz).
func (n *trunkNet) softphone(t *testing.T, user, device string, hz float64) *endpoint.Endpoint {
	t.Helper()
	ep, err := endpoint.New(endpoint.Config{
		Access: n.gw.cfg.Access, Roots: n.srv.CA().Pool(), User: user, Device: device, Password: user + "-p2p-secret",
		SRTP: true, Codecs: codecs.DefaultRegistry(), AutoAnswer: true, AddrWatch: -1,
		NewSource: func(string) (audio.Source, error) { return audio.NewTone(hz, 8000, toneAmp) },
		Logger:    testLogger(t).With("ep", user+"/"+device),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ep.Close() })
	return ep
}

// deskPhone is user's SIP desk phone (a sipgo UA, the UAC of its dialogs)
// with its own RTP leg playing a tone.
type deskPhone struct {
	*phone
	dialogs *sipgo.DialogClientCache
	rtp     *leg
	stop    func()
}

func newDeskPhone(t *testing.T, gw *Gateway, user string, hz float64) *deskPhone {
	t.Helper()
	p := newPhone(t, gw.Addr("udp"), user, user+"-desk-secret")
	d := &deskPhone{phone: p}
	// After a pull from the desk the gateway sends BYE in the phone's
	// client dialog.
	d.dialogs = sipgo.NewDialogClientCache(p.cli, sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: p.port()}})
	p.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := d.dialogs.ReadBye(req, tx); err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call Does Not Exist", nil))
		}
	})
	if res := p.register(3600); res.StatusCode != 200 {
		t.Fatalf("REGISTER %s: %d", user, res.StatusCode)
	}
	d.rtp, d.stop = p.rtpLeg(hz)
	t.Cleanup(d.stop)
	return d
}

// pickup dials the pickup code: the gateway (A) pulls the user's call
// onto the desk phone. It returns when the INVITE is answered and
// acknowledged (took: until the 200), and the phone's RTP is pointed at
// the gateway's answer (it sends from its next 20 ms tick).
func (d *deskPhone) pickup(ctx context.Context) (time.Duration, error) {
	took, _, err := d.pickupTimed(ctx)
	return took, err
}

// pickupTimed is pickup, also telling when (after the INVITE) the phone's
// RTP was pointed at the gateway.
func (d *deskPhone) pickupTimed(ctx context.Context) (took, rtpAt time.Duration, err error) {
	start := time.Now()
	dc, err := d.dialogs.Invite(ctx, d.gwURI("*8"), phoneSDP(d.t, d.rtp, "PCMU"), sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		return 0, 0, err
	}
	if err := dc.WaitAnswer(ctx, sipgo.AnswerOptions{Username: d.user, Password: d.pw}); err != nil {
		return 0, 0, err
	}
	took = time.Since(start)
	if err := dc.Ack(ctx); err != nil {
		return took, 0, err
	}
	d.useAnswer(d.rtp, dc.InviteResponse.Body())
	return took, time.Since(start), nil
}

// trunkUA is the SIP provider: a sipgo UA on trunkIP that places calls
// (no credentials: the gateway trusts its address) and counts every
// request the gateway sends it. Issue 9 §1: a trunk must see no message
// at all while its calls are moved.
type trunkUA struct {
	t       *testing.T
	cli     *sipgo.Client
	dialogs *sipgo.DialogClientCache
	gw      string
	// requests counts what the gateway sent, by method.
	mu       sync.Mutex
	requests map[string]int
}

func newTrunkUA(t *testing.T, gwAddr string) *trunkUA {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("test-trunk"))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", netip.AddrPortFrom(trunkIP, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname(trunkIP.String()), sipgo.WithClientPort(port),
		sipgo.WithClientConnectionAddr(netip.AddrPortFrom(trunkIP, uint16(port)).String()))
	if err != nil {
		t.Fatal(err)
	}
	tr := &trunkUA{t: t, cli: cli, gw: gwAddr, requests: map[string]int{}}
	tr.dialogs = sipgo.NewDialogClientCache(cli, sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "pstn", Host: trunkIP.String(), Port: port}})
	for _, m := range []sip.RequestMethod{sip.INVITE, sip.BYE, sip.UPDATE, sip.REFER, sip.INFO, sip.NOTIFY, sip.OPTIONS, sip.MESSAGE} {
		srv.OnRequest(m, func(req *sip.Request, tx sip.ServerTransaction) {
			tr.mu.Lock()
			tr.requests[req.Method.String()]++
			tr.mu.Unlock()
			if req.Method == sip.BYE {
				if err := tr.dialogs.ReadBye(req, tx); err == nil {
					return
				}
			}
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
		})
	}
	go func() { _ = srv.ServeUDP(pc) }()
	t.Cleanup(func() { _ = srv.Close(); _ = ua.Close() })
	// The client sends from the server's socket only once ServeUDP has
	// put it in the transport's pool; before that it would open another.
	eventually(t, "the trunk's SIP socket in sipgo's pool", func() bool {
		c, err := ua.TransportLayer().GetConnection("udp", netip.AddrPortFrom(trunkIP, uint16(port)).String())
		return err == nil && c != nil
	})
	return tr
}

// seen is what the gateway sent the trunk so far.
func (tr *trunkUA) seen() map[string]int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return maps(tr.requests)
}

func maps(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// call places a call to number with media's address in its SDP, and
// points media at the gateway's answer.
func (tr *trunkUA) call(ctx context.Context, number string, media *trunkMedia) (*sipgo.DialogClientSession, error) {
	h, port, _ := net.SplitHostPort(tr.gw)
	p, _ := strconv.Atoi(port)
	body, _, err := sdp.NewSession(7).Offer(sdp.Local{Addr: trunkIP, Port: int(media.addr().Port()), Codecs: []string{"PCMU"}, PTime: 20})
	if err != nil {
		return nil, err
	}
	dc, err := tr.dialogs.Invite(ctx, sip.Uri{Scheme: "sip", User: number, Host: h, Port: p}, body, sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		return nil, err
	}
	if err := dc.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		return nil, err
	}
	if err := dc.Ack(ctx); err != nil {
		return nil, err
	}
	o, err := sdp.ParseOffer(dc.InviteResponse.Body())
	if err != nil {
		return nil, fmt.Errorf("the gateway's answer: %w", err)
	}
	media.setPeer(netip.AddrPortFrom(o.Addr, uint16(o.Port)))
	return dc, nil
}

// trunkMedia is the RTP of one trunk call: it sends a PCMU tone every
// 20 ms to the gateway and records every packet the gateway sends (the
// audio the PSTN caller hears).
type trunkMedia struct {
	conn *net.UDPConn
	done chan struct{}
	wg   sync.WaitGroup

	peer atomic.Pointer[netip.AddrPort]
	mu   sync.Mutex
	got  []trunkPacket
}

type trunkPacket struct {
	at       time.Time
	seq      uint16
	ts, ssrc uint32
	real     bool   // the frame is a party's tone at full level, not silence or a concealed repeat
	hz       uint16 // the frame's tone (660 the desk, 880 the laptop), 0 when it has no energy
}

func newTrunkMedia(t *testing.T) *trunkMedia {
	t.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(trunkIP, 0)))
	if err != nil {
		t.Fatal(err)
	}
	m := &trunkMedia{conn: conn, done: make(chan struct{})}
	tone, err := audio.NewTone(440, 8000, toneAmp)
	if err != nil {
		t.Fatal(err)
	}
	m.wg.Add(2)
	go m.receive()
	go m.send(tone)
	t.Cleanup(m.close)
	return m
}

func (m *trunkMedia) addr() netip.AddrPort { return m.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (m *trunkMedia) setPeer(p netip.AddrPort) { m.peer.Store(&p) }

func (m *trunkMedia) close() {
	select {
	case <-m.done:
		return
	default:
	}
	close(m.done)
	_ = m.conn.Close()
	m.wg.Wait()
}

func (m *trunkMedia) receive() {
	defer m.wg.Done()
	buf := make([]byte, 1500)
	pcm := make([]int16, 160)
	var p rtp.Packet
	for {
		n, err := m.conn.Read(buf)
		if err != nil {
			return
		}
		at := time.Now()
		if p.Unmarshal(buf[:n]) != nil {
			continue
		}
		k, err := codecs.PCMU().Decode(pcm, p.Payload)
		real := err == nil && realFrame(pcm[:k])
		var hz uint16
		if err == nil && audio.RMS(pcm[:k]) > 0.01 {
			hz = uint16(audio.DominantFrequency(pcm[:k], 8000, []float64{660, 880}))
		}
		m.mu.Lock()
		m.got = append(m.got, trunkPacket{at: at, seq: p.SequenceNumber, ts: p.Timestamp, ssrc: p.SSRC, real: real, hz: hz})
		m.mu.Unlock()
	}
}

func (m *trunkMedia) send(tone *audio.Tone) {
	defer m.wg.Done()
	pcm := make([]int16, 160)
	payload := make([]byte, 160)
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 0x7e57c0de}}
	buf := make([]byte, 1500)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-tick.C:
		}
		peer := m.peer.Load()
		if peer == nil {
			continue
		}
		_ = tone.ReadFrame(pcm)
		k, _ := codecs.PCMU().Encode(payload, pcm)
		pkt.Payload = payload[:k]
		pkt.SequenceNumber++
		pkt.Timestamp += 160
		if w, err := pkt.MarshalTo(buf); err == nil {
			_, _ = m.conn.WriteToUDPAddrPort(buf[:w], *peer)
		}
	}
}

// realFrame says whether a 20 ms frame is a party's tone at its full
// level: not silence (comfort or the leg's prebuffer), not a concealed
// repeat (the jitter buffer fades the last frame to 3/4, 1/2, 1/4).
func realFrame(pcm []int16) bool {
	var sum float64
	for _, s := range pcm {
		sum += float64(s) * float64(s)
	}
	rms := math.Sqrt(sum / float64(len(pcm)))
	nominal := toneAmp * 32767 / math.Sqrt2
	return rms > 0.85*nominal
}

// moveAudio is what the trunk heard across one move: the packets that
// arrived from start until end plus settle.
type moveAudio struct {
	lost     int           // sequence numbers missing
	notReal  int           // frames of silence or concealed repeats
	heardGap time.Duration // notReal frames × 20 ms
	ssrcs    int
}

// across is what the trunk heard between from and to.
func (m *trunkMedia) across(from, to time.Time) moveAudio {
	m.mu.Lock()
	defer m.mu.Unlock()
	var r moveAudio
	var prev *trunkPacket
	ssrcs := map[uint32]bool{}
	for i := range m.got {
		p := &m.got[i]
		if p.at.Before(from) || p.at.After(to) {
			continue
		}
		ssrcs[p.ssrc] = true
		if prev != nil && prev.ssrc == p.ssrc {
			if d := p.seq - prev.seq; d > 1 && d < 1000 {
				r.lost += int(d - 1)
			}
		}
		if !p.real {
			r.notReal++
		}
		prev = p
	}
	r.ssrcs = len(ssrcs)
	r.heardGap = time.Duration(r.notReal) * 20 * time.Millisecond
	return r
}

// heard is what the trunk heard from from to to, as runs of frames
// relative to from: "0-60 ms 880 Hz, 60-160 ms silence (5), ...": whose
// tone (660 the desk, 880 the laptop), at full level or not.
func (m *trunkMedia) heard(from, to time.Time) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var runs []string
	var runStart time.Duration
	var label string
	count := 0
	flush := func(end time.Duration) {
		if count > 0 {
			runs = append(runs, fmt.Sprintf("%d-%d ms %s (%d)", runStart.Milliseconds(), end.Milliseconds(), label, count))
		}
	}
	var last time.Duration
	for _, p := range m.got {
		if p.at.Before(from) || p.at.After(to) {
			continue
		}
		l := "silence"
		switch {
		case p.hz != 0 && p.real:
			l = fmt.Sprintf("%d Hz", p.hz)
		case p.hz != 0:
			l = fmt.Sprintf("%d Hz faded", p.hz)
		}
		at := p.at.Sub(from)
		if l != label {
			flush(at)
			label, runStart, count = l, at, 0
		}
		count++
		last = at
	}
	flush(last)
	return strings.Join(runs, ", ")
}

// switchGap is how many frames that were not a party's tone at full level
// the trunk heard between the last full frame of fromHz and the first full
// frame of toHz after it, between from and to (ok false: no such switch).
func (m *trunkMedia) switchGap(from, to time.Time, fromHz, toHz uint16) (int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	between, seen := 0, false
	for _, p := range m.got {
		if p.at.Before(from) || p.at.After(to) {
			continue
		}
		switch {
		case p.real && p.hz == fromHz:
			between, seen = 0, true
		case p.real && p.hz == toHz && seen:
			return between, true
		case seen:
			between++
		}
	}
	return between, false
}

// total is the whole call's packets, losses and SSRCs.
func (m *trunkMedia) total() (packets, lost, ssrcs int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[uint32]bool{}
	for i, p := range m.got {
		seen[p.ssrc] = true
		if i > 0 && m.got[i-1].ssrc == p.ssrc {
			if d := p.seq - m.got[i-1].seq; d > 1 && d < 1000 {
				lost += int(d - 1)
			}
		}
	}
	return len(m.got), lost, len(seen)
}

// idle waits until ep has no call that is not ended (B lets go once it
// is released, step 12).
func idleEndpoint(t *testing.T, ep *endpoint.Endpoint) {
	t.Helper()
	eventually(t, "the device to let its call go", func() bool {
		for _, c := range ep.Calls() {
			if c.State != "ended" {
				return false
			}
		}
		return true
	})
}

// deskLeg is the gateway's SIP leg toward the desk phone of user's
// newest call, nil when the desk has none.
func deskLeg(g *Gateway, user string) *leg {
	d := g.devices[user]
	d.mu.Lock()
	defer d.mu.Unlock()
	var newest *bridge
	for _, b := range d.calls {
		if newest == nil || b.started.After(newest.started) {
			newest = b
		}
	}
	if newest == nil {
		return nil
	}
	return newest.leg
}

// legCounts is a SIP leg's playout counters (leg.stats): underruns and
// frames read that left it empty.
type legCounts struct{ underruns, emptied uint64 }

func countsOf(l *leg) legCounts {
	if l == nil {
		return legCounts{}
	}
	return legCounts{l.stats.Underruns.Load(), l.stats.Emptied.Load()}
}

func (a legCounts) minus(b legCounts) legCounts {
	return legCounts{a.underruns - b.underruns, a.emptied - b.emptied}
}

// concealedAtC is how many frames the gateway's trunk device (C) has
// concealed in its call's media so far (a faded repeat or silence
// toward the trunk: a hole in what it received from A or B).
func concealedAtC(t *testing.T, g *Gateway) uint64 {
	t.Helper()
	ep := g.devices[trunkKey("pstn")].endpoint()
	var n uint64
	for _, c := range ep.Calls() {
		if c.State == "active" && c.Media != nil {
			n += c.Media.Concealed
		}
	}
	return n
}

// quantile of d (f in [0,1]) in ms.
func quantileMS(d []time.Duration, f float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[int(f*float64(len(s)-1))]) / float64(time.Millisecond)
}

func loadAvg() string {
	raw, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(raw))
}

// finishedPull is A's pull for a pickup the desk dialled at start (the
// handoff of the desk's device endpoint that started after it), once it
// has finished.
func finishedPull(t *testing.T, gw *Gateway, user string, start time.Time) endpoint.HandoffInfo {
	t.Helper()
	var h endpoint.HandoffInfo
	eventually(t, "A's pull for the *8 to finish", func() bool {
		ep := gw.devices[user].endpoint()
		if ep == nil {
			return false
		}
		for _, x := range ep.Handoffs() {
			if x.Kind == "pull" && !x.Started.Before(start) && x.Finished != nil {
				h = x
				return true
			}
		}
		return false
	})
	return h
}

// pickupTimeline is one *8 move as seen from its INVITE (0 ms): A's
// handoff steps at the gateway (the desk's device endpoint), the 200 the
// phone got, when the phone's RTP was pointed at the gateway, and what
// the trunk heard until settle after the move's end.
func pickupTimeline(h endpoint.HandoffInfo, start, end time.Time, answered, rtpAt time.Duration, media *trunkMedia) string {
	var steps []string
	for _, s := range h.Steps {
		steps = append(steps, fmt.Sprintf("%d@%.0f", s.Step, float64(s.At.Sub(start).Microseconds())/1000))
	}
	return fmt.Sprintf("A's steps %s; 200 OK at %.0f ms; the phone's RTP from %.0f ms (+ up to 20); the trunk heard: %s",
		strings.Join(steps, " "), float64(answered.Microseconds())/1000, float64(rtpAt.Microseconds())/1000,
		media.heard(start, end.Add(settle)))
}

// settle is how long after a move is done the trunk's audio still belongs
// to it: the new device's frames reach the trunk a jitter delay (40 ms)
// after they reach the gateway's C.
const settle = 200 * time.Millisecond

// TestBenchTrunkPull is issue 9 §6's audio gap heard by a trunk, with the
// gateway as C (docs/benchmarks.md §23): a PSTN caller (the test's SIP
// provider on 127.0.0.6, RTP recorded) calls user u000's laptop softphone
// through the gateway's trunk; then the call moves N times each way
// between u000's SIP desk phone and the laptop: the desk takes it with
// the pickup code (INVITE *8, the gateway is A and C), the laptop pulls it
// back (Endpoint.Pull, the gateway is B and C). From the trunk's RTP, per
// move: sequence numbers lost (target 0) and the frames that were not a
// party's tone at full level, silence or concealed repeats (target p99
// < 40 ms), with C's concealed frames and the desk leg's underruns and
// frames read empty (no frame of margin left) as counts; after each pair
// a 300 ms control window of the steady call with no move (the load's
// share). The trunk must get no SIP request at all. Skipped unless
// BATON_BENCH_BRIDGE_PULL=1; N is BATON_BENCH_BRIDGE_PULL_N (default
// 1000).
func TestBenchTrunkPull(t *testing.T) {
	if os.Getenv("BATON_BENCH_BRIDGE_PULL") == "" {
		t.Skip("benchmark: set BATON_BENCH_BRIDGE_PULL=1 (make bench-bridge-pull)")
	}
	n := 1000
	if v := os.Getenv("BATON_BENCH_BRIDGE_PULL_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("BATON_BENCH_BRIDGE_PULL_N=%q: want a positive number", v)
		}
	}
	// BATON_BENCH_TRUNK_TIMELINE=K logs the first K *8 moves' timelines:
	// A's handoff steps, the phone's 200 and RTP, what the trunk heard.
	timeline := 0
	if v := os.Getenv("BATON_BENCH_TRUNK_TIMELINE"); v != "" {
		var err error
		if timeline, err = strconv.Atoi(v); err != nil || timeline < 0 {
			t.Fatalf("BATON_BENCH_TRUNK_TIMELINE=%q: want a number of moves", v)
		}
	}
	tn := newTrunkNet(t, 1)
	ctx := context.Background()
	user := tn.users[0]
	laptop := tn.softphone(t, user, "laptop", 880)
	desk := newDeskPhone(t, tn.gw, user, 660)
	tn.waitTrunkOnline(t)
	eventually(t, "the desk online", func() bool { return online(laptop, user+"/desk") })
	tr := newTrunkUA(t, tn.gw.Addr("udp"))
	media := newTrunkMedia(t)
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	dc, err := tr.call(cctx, trunkNumber(0), media)
	cancel()
	if err != nil {
		t.Fatalf("the trunk's call: %v", err)
	}
	eventually(t, "the laptop's call to be active", func() bool {
		for _, c := range laptop.Calls() {
			if c.State == "active" {
				return true
			}
		}
		return false
	})
	time.Sleep(500 * time.Millisecond)
	before := tr.seen()

	type move struct {
		start, end time.Time
		took       time.Duration
		answered   time.Duration // *8: the phone's 200 OK (it comes before the pull)
		// concealed is what C concealed in the move's window; leg is
		// the desk leg's counters then: for *8 while A (the gateway's
		// desk device) read it, until done and in the settle after it;
		// for a softphone pull while B read it.
		concealed    uint64
		leg, legDone legCounts
	}
	// steady are control windows: after each pair of moves, 300 ms of
	// the steady call on the laptop with no move (a move's window is
	// 280-320 ms), for what the load alone costs the trunk's audio here.
	var toDesk, fromDesk, steady []move
	retries := 0
	slow := 0 // *8 moves past the first timeline ones logged for a gap of 40 ms or more
	for i := 0; i < n; i++ {
		mctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		var start time.Time
		var answered, rtpAt time.Duration
		var h endpoint.HandoffInfo
		var err error
		c0 := concealedAtC(t, tn.gw)
		for try := 0; ; try++ {
			start = time.Now()
			answered, rtpAt, err = desk.pickupTimed(mctx)
			if err == nil {
				// The phone is answered before the pull (docs/transfers.md):
				// the move is done when A's handoff is.
				h = finishedPull(t, tn.gw, user, start)
				if h.State != "done" {
					err = fmt.Errorf("answered, then the pull %s: %s", h.State, h.Error)
				}
			}
			if err == nil || try == 20 {
				break
			}
			retries++ // the desk's device may still hold its last call's slot
			t.Logf("move %d: the desk's *8 failed, tried again: %v", 2*i, err)
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err != nil {
			t.Fatalf("move %d: the desk's *8: %v", 2*i, err)
		}
		end := *h.Finished
		if a := start.Add(answered); a.After(end) {
			end = a
		}
		dl := deskLeg(tn.gw, user)
		atDone := countsOf(dl)
		time.Sleep(settle)
		toDesk = append(toDesk, move{start: start, end: end, took: end.Sub(start), answered: answered,
			concealed: concealedAtC(t, tn.gw) - c0, leg: countsOf(dl), legDone: atDone})
		if gap := media.across(start, end.Add(settle)).heardGap; i < timeline || (timeline > 0 && gap >= 40*time.Millisecond && slow < 20) {
			if i >= timeline {
				slow++
			}
			t.Logf("move %d (*8, heard gap %v) timeline: %s", 2*i, gap, pickupTimeline(h, start, end, answered, rtpAt, media))
		}

		idleEndpoint(t, laptop)
		mctx, cancel = context.WithTimeout(ctx, 20*time.Second)
		var info endpoint.HandoffInfo
		c0, l0 := concealedAtC(t, tn.gw), countsOf(dl)
		for try := 0; ; try++ {
			start = time.Now()
			info, err = laptop.Pull(mctx, endpoint.PullRequest{From: "desk"})
			if !errors.Is(err, endpoint.ErrBadState) || try == 100 {
				break
			}
			retries++ // the laptop still held its last call's slot
			time.Sleep(10 * time.Millisecond)
		}
		took := time.Since(start)
		cancel()
		if err != nil || info.State != "done" {
			t.Fatalf("move %d: the laptop's pull from the desk: %s %v", 2*i+1, info.State, err)
		}
		l1 := countsOf(dl)
		time.Sleep(settle)
		fromDesk = append(fromDesk, move{start: start, end: start.Add(took), took: took,
			concealed: concealedAtC(t, tn.gw) - c0, leg: l1.minus(l0)})
		c0, start = concealedAtC(t, tn.gw), time.Now()
		time.Sleep(300 * time.Millisecond)
		steady = append(steady, move{start: start, end: start.Add(300*time.Millisecond - settle), concealed: concealedAtC(t, tn.gw) - c0})
	}
	after := tr.seen()
	if err := dc.Bye(ctx); err != nil {
		t.Errorf("the trunk's BYE after the moves: %v (its call was dropped?)", err)
	}
	media.close()

	t.Logf("%d moves each way; load %s; moves tried again (a device still held its last call's slot): %d", n, loadAvg(), retries)
	for _, r := range []struct {
		name  string
		moves []move
	}{{"desk phone takes it with *8 (gateway is A and C)", toDesk}, {"softphone pulls from the desk phone (gateway is B and C)", fromDesk},
		{"no move: 300 ms of the steady call on the laptop (control)", steady}} {
		var took, gaps, answered []time.Duration
		lost, worst, some, over := 0, 0, 0, 0
		var concealed, underruns, emptied, emptiedAfter uint64
		withConcealed, withUnderrun, emptiedMoves := 0, 0, 0
		for _, m := range r.moves {
			a := media.across(m.start, m.end.Add(settle))
			concealed += m.concealed
			underruns += m.leg.underruns
			emptied += m.leg.emptied
			if m.concealed > 0 {
				withConcealed++
			}
			if m.leg.underruns > 0 {
				withUnderrun++
			}
			// For a softphone pull legDone is zero: all of its window.
			if after := m.leg.minus(m.legDone).emptied; after > 0 {
				emptiedAfter += after
				emptiedMoves++
			}
			took = append(took, m.took)
			if m.answered > 0 {
				answered = append(answered, m.answered)
			}
			gaps = append(gaps, a.heardGap)
			if a.heardGap > 0 {
				some++
			}
			if a.heardGap >= 40*time.Millisecond {
				over++
			}
			lost += a.lost
			worst = max(worst, a.ssrcs)
		}
		ans := "-"
		if len(answered) > 0 {
			ans = fmt.Sprintf("%.1f / %.1f / %.1f ms", quantileMS(answered, 0.5), quantileMS(answered, 0.99), quantileMS(answered, 1))
		}
		t.Logf("| %s | %d | pull %.1f / %.1f / %.1f ms | 200 OK %s | heard gap %.0f / %.0f / %.0f ms (moves with any: %d, with 40 ms or more: %d) | lost %d |",
			r.name, len(r.moves), quantileMS(took, 0.5), quantileMS(took, 0.99), quantileMS(took, 1), ans,
			quantileMS(gaps, 0.5), quantileMS(gaps, 0.99), quantileMS(gaps, 1), some, over, lost)
		t.Logf("  counts: C concealed %d frames (in %d moves); the desk leg: %d underruns (in %d moves), %d frames read that left it empty (%d of them after A's pull was done (*8) or in the window (pulls), in %d moves)",
			concealed, withConcealed, underruns, withUnderrun, emptied, emptiedAfter, emptiedMoves)
		if lost != 0 {
			t.Errorf("%s: the trunk lost %d packets", r.name, lost)
		}
		if worst > 1 {
			t.Errorf("%s: the trunk's RTP changed SSRC", r.name)
		}
	}
	packets, lost, ssrcs := media.total()
	t.Logf("the trunk heard %d packets, %d lost, %d SSRCs; SIP requests from the gateway during the moves: %v (before %v)", packets, lost, ssrcs, after, before)
	for m, c := range after {
		if c != before[m] {
			t.Errorf("the gateway sent the trunk %d %s during the moves; want no SIP message at all", c-before[m], m)
		}
	}
}
