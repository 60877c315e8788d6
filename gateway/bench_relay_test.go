package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/media"
)

// Issue 8 §7, relayed calls: N concurrent G.711 calls, 50 packets/s each
// way, through the gateway's relay (the SIP leg and the P2P media session
// of each call, the code `baton gateway` runs per bridged call) and
// through rtpengine-daemon in userspace (--table=-1, driven by its ng
// protocol), in the same run with the same load generator. Not part of
// `make test`: it runs only with BATON_BENCH_RELAY=1 (make bench-relay).
//
// Why not the full P2P path: every bridged call needs a far P2P endpoint
// (a softphone) that paces, encodes, decodes and encrypts its own 100
// packets/s; a few thousand of them next to the gateway on a 2-core
// machine measure the softphones, not the gateway. So the far side here is
// the generator speaking plain RTP to each call's P2P session, and the
// phone side is the generator speaking plain RTP to each call's leg, as
// rtpengine gets it.
//
// Per call: the relay host (this test binary re-executed, a separate
// process whose CPU and memory are measured like rtpengine's) opens a leg
// (phone codec PCMU) and a media.Session (call codec PCMU, or PCMA with
// transcoding), leg as the session's Source and Sink. The generator sends
// from one socket per side, each frame carrying the call's number and
// the frame's number in 12 octets chosen to survive µ-law <-> A-law
// transcoding unambiguously, so loss is counted frame by frame in both
// directions (silence, concealment and cross-talk do not count as
// received).
//
// Knobs: BATON_BENCH_RELAY_CALLS (comma list, default 100,500,1000,2000),
// BATON_BENCH_RELAY_SECONDS (measured seconds per step, default 10),
// BATON_BENCH_RELAY_MODES (default relay,transcode),
// BATON_BENCH_RELAY_SYSTEMS (default baton,rtpengine).
func TestBenchRelay(t *testing.T) {
	if os.Getenv("BATON_BENCH_RELAY") != "1" {
		t.Skip("benchmark: set BATON_BENCH_RELAY=1 (make bench-relay)")
	}
	counts := benchInts(t, "BATON_BENCH_RELAY_CALLS", []int{100, 500, 1000, 2000})
	secs := benchInts(t, "BATON_BENCH_RELAY_SECONDS", []int{10})[0]
	modes := benchList("BATON_BENCH_RELAY_MODES", "relay,transcode")
	systems := benchList("BATON_BENCH_RELAY_SYSTEMS", "baton,rtpengine")
	t.Logf("machine: %d CPUs (GOMAXPROCS %d), load %s at start; other agents share it", runtime.NumCPU(), runtime.GOMAXPROCS(0), benchLoad())
	for _, n := range counts {
		for _, mode := range modes {
			for _, sys := range systems {
				var r relayResult
				switch sys {
				case "baton":
					r = runBatonRelay(t, n, mode, secs)
				case "rtpengine":
					r = runRTPEngine(t, n, mode, secs)
				default:
					t.Fatalf("BATON_BENCH_RELAY_SYSTEMS: unknown system %q", sys)
				}
				t.Logf("RESULT %-9s %-9s calls %5d: loss phone->p2p %.4f%% p2p->phone %.4f%% (%d/%d frames lost), CPU %.2f µs/packet (%.0f%% of a core), RSS %.1f KiB/call%s, generator CPU %.0f%% (send lateness p99 %v max %v), load %s",
					sys, mode, n, 100*r.lossAB(), 100*r.lossBA(), r.sentAB-r.gotAB+r.sentBA-r.gotBA, r.sentAB+r.sentBA,
					r.usPerPacket(), 100*r.cpu.Seconds()/r.wall.Seconds(), r.rssPerCall/1024, r.extra, 100*r.genCPU.Seconds()/r.wall.Seconds(), r.late99.Round(100*time.Microsecond), r.lateMax.Round(100*time.Microsecond), r.load)
			}
		}
	}
}

// relayResult is one step: frames sent and received per direction (A is
// the phone side, B the P2P side) in the measured window, the relay's CPU
// over it and its memory per call.
type relayResult struct {
	sentAB, gotAB, sentBA, gotBA int64
	cpu, genCPU, wall            time.Duration
	late99, lateMax              time.Duration // the generator's own send lateness per 1 ms slot
	rssPerCall                   float64
	extra, load                  string
}

func (r relayResult) lossAB() float64 { return lossOf(r.sentAB, r.gotAB) }
func (r relayResult) lossBA() float64 { return lossOf(r.sentBA, r.gotBA) }
func (r relayResult) usPerPacket() float64 {
	p := r.sentAB + r.sentBA
	if p == 0 {
		return 0
	}
	return float64(r.cpu.Microseconds()) / float64(p)
}

func lossOf(sent, got int64) float64 {
	if sent == 0 {
		return 1
	}
	return float64(sent-got) / float64(sent)
}

// runBatonRelay runs one step through the gateway's relay in a child
// process.
func runBatonRelay(t *testing.T, n int, mode string, secs int) relayResult {
	t.Helper()
	g := newRelayGen(t, n, mode)
	defer g.close()
	args := []string{"-test.run=^TestRelayBenchHost$", "-test.count=1"}
	if dir := os.Getenv("BATON_BENCH_RELAY_PROFILE"); dir != "" {
		args = append(args, "-test.cpuprofile="+filepath.Join(dir, fmt.Sprintf("host-%s-%d.prof", mode, n)))
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "BATON_RELAY_HOST=1", "BATON_RELAY_N="+strconv.Itoa(n), "BATON_RELAY_MODE="+mode,
		"BATON_RELAY_A="+g.addrA().String(), "BATON_RELAY_B="+g.addrB().String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	var rss0, rss1 float64
	var heapStack string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "RSS0":
			rss0, _ = strconv.ParseFloat(f[1], 64)
		case "CALL":
			i, _ := strconv.Atoi(f[1])
			la, _ := strconv.Atoi(f[2])
			sa, _ := strconv.Atoi(f[3])
			g.setCall(i, uint16(la), uint16(sa))
		case "READY":
			rss1, _ = strconv.ParseFloat(f[1], 64)
			heapStack = fmt.Sprintf(" (Go heap+stacks %s B/call)", f[2])
		}
		if f[0] == "READY" {
			break
		}
	}
	if rss1 == 0 {
		t.Fatalf("relay host did not come up: %v\n%s", sc.Err(), stderr.String())
	}
	r := g.run(t, cmd.Process.Pid, secs)
	r.rssPerCall = (rss1 - rss0) / float64(n)
	r.extra = heapStack
	_ = stdin.Close()
	var tail []string
	for sc.Scan() {
		tail = append(tail, sc.Text())
	}
	for _, l := range tail {
		if strings.HasPrefix(l, "STATS") {
			r.extra += ", host " + strings.TrimPrefix(l, "STATS ")
		}
	}
	return r
}

// TestRelayBenchHost is the relay host of TestBenchRelay, run in a child
// process: it opens BATON_RELAY_N calls, prints their ports, relays until
// its stdin closes, then prints its counters.
func TestRelayBenchHost(t *testing.T) {
	if os.Getenv("BATON_RELAY_HOST") != "1" {
		t.Skip("the child process of TestBenchRelay")
	}
	n, _ := strconv.Atoi(os.Getenv("BATON_RELAY_N"))
	a := netip.MustParseAddrPort(os.Getenv("BATON_RELAY_A"))
	b := netip.MustParseAddrPort(os.Getenv("BATON_RELAY_B"))
	call := codecs.PCMU()
	if os.Getenv("BATON_RELAY_MODE") == "transcode" {
		call = codecs.PCMA()
	}
	lo := netip.MustParseAddr("127.0.0.1")
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	fmt.Printf("RSS0 %d\n", selfRSS())
	legs := make([]*leg, n)
	sess := make([]*media.Session, n)
	for i := range n {
		l, err := openLeg(lo)
		if err != nil {
			t.Fatal(err)
		}
		l.setRemote(codecs.PCMU(), 0, -1, a, a.Addr(), true)
		s, err := media.Open(context.Background(), media.Config{Local: netip.AddrPortFrom(lo, 0), Codec: call, Source: l, Sink: l})
		if err != nil {
			t.Fatal(err)
		}
		s.SetRemote(b)
		s.Start()
		legs[i], sess[i] = l, s
		fmt.Printf("CALL %d %d %d\n", i, l.LocalAddr().Port(), s.LocalAddr().Port())
	}
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	perCall := (int64(m1.HeapInuse+m1.StackInuse) - int64(m0.HeapInuse+m0.StackInuse)) / int64(n)
	fmt.Printf("READY %d %d\n", selfRSS(), perCall)
	_, _ = io.Copy(io.Discard, os.Stdin)
	var sum media.Stats
	var passed, overflow, wrongSrc uint64
	for i := range n {
		st := sess[i].Stats()
		sum.PayloadsSent += st.PayloadsSent
		sum.PayloadsPlayed += st.PayloadsPlayed
		sum.PacketsSent += st.PacketsSent
		sum.FramesConcealed += st.FramesConcealed
		sum.Late += st.Late
		passed += legs[i].stats.Passed.Load()
		overflow += legs[i].stats.Overflow.Load()
		wrongSrc += legs[i].stats.WrongSource.Load()
		_ = sess[i].Close()
		_ = legs[i].Close()
	}
	fmt.Printf("STATS sessions sent %d (%d as payloads), played %d as payloads, concealed %d, late %d; legs passed %d, overflow %d samples, wrong source %d\n",
		sum.PacketsSent, sum.PayloadsSent, sum.PayloadsPlayed, sum.FramesConcealed, sum.Late, passed, overflow, wrongSrc)
}

// runRTPEngine runs one step through rtpengine-daemon in userspace.
func runRTPEngine(t *testing.T, n int, mode string, secs int) relayResult {
	t.Helper()
	bin, err := exec.LookPath("rtpengine")
	if err != nil {
		t.Skip("rtpengine not installed (Debian package rtpengine-daemon)")
	}
	ngConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ngPort := ngConn.LocalAddr().(*net.UDPAddr).Port
	_ = ngConn.Close() // a free port for rtpengine's ng listener
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "rtpengine.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--table=-1", "--interface=127.0.0.1", fmt.Sprintf("--listen-ng=127.0.0.1:%d", ngPort),
		"--foreground", "--log-stderr", "--log-level=4", "--port-min=20000", "--port-max=59999", "--pidfile="+filepath.Join(dir, "pid"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	ng := newNGClient(t, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(ngPort)))
	defer ng.close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := ng.call(map[string]any{"command": "ping"}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rtpengine does not answer ng ping; log %s", logf.Name())
		}
	}
	g := newRelayGen(t, n, mode)
	defer g.close()
	rss0 := procRSS(cmd.Process.Pid)
	for i := range n {
		id := fmt.Sprintf("bench-%d", i)
		offer := map[string]any{"command": "offer", "call-id": id, "from-tag": "a", "sdp": benchSDP(g.addrA(), 0)}
		bPT := uint8(0)
		if mode == "transcode" {
			offer["codec"] = map[string]any{"transcode": []any{"PCMA"}}
			bPT = 8
		}
		res, err := ng.call(offer)
		if err != nil {
			t.Fatalf("rtpengine offer %d: %v", i, err)
		}
		portB, err := sdpPort(res)
		if err != nil {
			t.Fatalf("rtpengine offer %d: %v", i, err)
		}
		res, err = ng.call(map[string]any{"command": "answer", "call-id": id, "from-tag": "a", "to-tag": "b", "sdp": benchSDP(g.addrB(), bPT)})
		if err != nil {
			t.Fatalf("rtpengine answer %d: %v", i, err)
		}
		portA, err := sdpPort(res)
		if err != nil {
			t.Fatalf("rtpengine answer %d: %v", i, err)
		}
		g.setCall(i, portA, portB)
	}
	time.Sleep(200 * time.Millisecond)
	rss1 := procRSS(cmd.Process.Pid)
	r := g.run(t, cmd.Process.Pid, secs)
	r.rssPerCall = float64(rss1-rss0) / float64(n)
	return r
}

func benchSDP(a netip.AddrPort, pt uint8) string {
	name := "PCMU"
	if pt == 8 {
		name = "PCMA"
	}
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP %d\r\na=rtpmap:%d %s/8000\r\na=sendrecv\r\n",
		a.Addr(), a.Addr(), a.Port(), pt, pt, name)
}

// sdpPort is the m=audio port of an ng reply's SDP.
func sdpPort(res map[string]any) (uint16, error) {
	if r, _ := res["result"].(string); r != "ok" {
		return 0, fmt.Errorf("result %q: %v", r, res["error-reason"])
	}
	s, _ := res["sdp"].(string)
	for _, l := range strings.Split(s, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "m=audio" {
			p, err := strconv.Atoi(f[1])
			return uint16(p), err
		}
	}
	return 0, fmt.Errorf("no m=audio in %q", s)
}

// ngClient speaks rtpengine's ng control protocol: "cookie bencode-dict"
// over UDP.
type ngClient struct {
	conn *net.UDPConn
	to   netip.AddrPort
	seq  int
}

func newNGClient(t *testing.T, to netip.AddrPort) *ngClient {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return &ngClient{conn: c, to: to}
}

func (c *ngClient) close() { _ = c.conn.Close() }

func (c *ngClient) call(msg map[string]any) (map[string]any, error) {
	c.seq++
	cookie := "c" + strconv.Itoa(c.seq)
	var b bytes.Buffer
	b.WriteString(cookie + " ")
	bencode(&b, msg)
	for try := 0; try < 3; try++ {
		if _, err := c.conn.WriteToUDPAddrPort(b.Bytes(), c.to); err != nil {
			return nil, err
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		buf := make([]byte, 65536)
		for {
			n, _, err := c.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			ck, body, ok := bytes.Cut(buf[:n], []byte(" "))
			if !ok || string(ck) != cookie {
				continue
			}
			v, _, err := bdecode(body)
			if err != nil {
				return nil, fmt.Errorf("ng reply: %w", err)
			}
			d, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("ng reply is not a dictionary: %q", body)
			}
			return d, nil
		}
	}
	return nil, fmt.Errorf("ng: no reply to %v", msg["command"])
}

func bencode(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case string:
		fmt.Fprintf(b, "%d:%s", len(v), v)
	case int:
		fmt.Fprintf(b, "i%de", v)
	case []any:
		b.WriteByte('l')
		for _, e := range v {
			bencode(b, e)
		}
		b.WriteByte('e')
	case map[string]any:
		b.WriteByte('d')
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		// Bencode dictionaries are sorted by key.
		for i := range keys {
			for j := i + 1; j < len(keys); j++ {
				if keys[j] < keys[i] {
					keys[i], keys[j] = keys[j], keys[i]
				}
			}
		}
		for _, k := range keys {
			bencode(b, k)
			bencode(b, v[k])
		}
		b.WriteByte('e')
	default:
		panic(fmt.Sprintf("bencode: %T", v))
	}
}

// bdecode decodes one bencoded value (strings, integers, lists,
// dictionaries) and returns the rest of the input.
func bdecode(b []byte) (any, []byte, error) {
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("bencode: unexpected end")
	}
	switch c := b[0]; {
	case c == 'i':
		end := bytes.IndexByte(b, 'e')
		if end < 0 {
			return nil, nil, fmt.Errorf("bencode: unterminated integer")
		}
		n, err := strconv.Atoi(string(b[1:end]))
		return n, b[end+1:], err
	case c == 'l':
		var out []any
		b = b[1:]
		for len(b) > 0 && b[0] != 'e' {
			v, rest, err := bdecode(b)
			if err != nil {
				return nil, nil, err
			}
			out, b = append(out, v), rest
		}
		if len(b) == 0 {
			return nil, nil, fmt.Errorf("bencode: unterminated list")
		}
		return out, b[1:], nil
	case c == 'd':
		out := map[string]any{}
		b = b[1:]
		for len(b) > 0 && b[0] != 'e' {
			k, rest, err := bdecode(b)
			if err != nil {
				return nil, nil, err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, nil, fmt.Errorf("bencode: dictionary key %v is not a string", k)
			}
			v, rest, err := bdecode(rest)
			if err != nil {
				return nil, nil, err
			}
			out[ks], b = v, rest
		}
		if len(b) == 0 {
			return nil, nil, fmt.Errorf("bencode: unterminated dictionary")
		}
		return out, b[1:], nil
	case '0' <= c && c <= '9':
		colon := bytes.IndexByte(b, ':')
		if colon < 0 {
			return nil, nil, fmt.Errorf("bencode: string without length")
		}
		n, err := strconv.Atoi(string(b[:colon]))
		if err != nil || n < 0 || colon+1+n > len(b) {
			return nil, nil, fmt.Errorf("bencode: bad string length %q", b[:colon])
		}
		return string(b[colon+1 : colon+1+n]), b[colon+1+n:], nil
	default:
		return nil, nil, fmt.Errorf("bencode: unexpected %q", c)
	}
}

// relayGen is the load generator: one socket for every call's phone side
// (A) and one for every call's P2P side (B). It sends 50 frames/s per call
// each way, spread over the 20 ms, and counts the marked frames that come
// back out of the relay.
type relayGen struct {
	n          int
	mode       string
	a, b       *net.UDPConn
	toA, toB   []netip.AddrPort // per call: where the A side sends (relay's phone-facing port), where B sends
	byPortA    map[uint16]int   // relay port -> call, for what arrives at A
	byPortB    map[uint16]int
	mu         sync.Mutex
	k0, k1     atomic.Int64 // measured window of frame numbers [k0, k1)
	gotAB      []atomic.Int64
	gotBA      []atomic.Int64
	inAB, inBA *markCodec // how markers look after the relay, per direction
	wg         sync.WaitGroup
}

func newRelayGen(t *testing.T, n int, mode string) *relayGen {
	t.Helper()
	g := &relayGen{n: n, mode: mode, toA: make([]netip.AddrPort, n), toB: make([]netip.AddrPort, n),
		byPortA: map[uint16]int{}, byPortB: map[uint16]int{}, gotAB: make([]atomic.Int64, n), gotBA: make([]atomic.Int64, n)}
	for _, c := range []**net.UDPConn{&g.a, &g.b} {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadBuffer(8 << 20)
		_ = conn.SetWriteBuffer(8 << 20)
		*c = conn
	}
	// Phone side always µ-law; the P2P side µ-law, or A-law when
	// transcoding. inAB: what A's µ-law markers look like arriving at B.
	g.inAB, g.inBA = newMarkCodec(codecs.PCMU(), codecs.PCMU()), newMarkCodec(codecs.PCMU(), codecs.PCMU())
	if mode == "transcode" {
		g.inAB, g.inBA = newMarkCodec(codecs.PCMU(), codecs.PCMA()), newMarkCodec(codecs.PCMA(), codecs.PCMU())
	}
	g.k0.Store(1 << 40)
	g.k1.Store(1 << 40)
	// k1 is set before sending starts (k0 opens the window when the
	// warm-up ends), so no frame of the window is missed.
	return g
}

func (g *relayGen) addrA() netip.AddrPort { return g.a.LocalAddr().(*net.UDPAddr).AddrPort() }
func (g *relayGen) addrB() netip.AddrPort { return g.b.LocalAddr().(*net.UDPAddr).AddrPort() }

func (g *relayGen) close() { _ = g.a.Close(); _ = g.b.Close(); g.wg.Wait() }

// setCall records call i's relay ports: portA is where the phone side
// sends (and what A receives from), portB the same for the P2P side.
func (g *relayGen) setCall(i int, portA, portB uint16) {
	lo := netip.MustParseAddr("127.0.0.1")
	g.mu.Lock()
	defer g.mu.Unlock()
	g.toA[i], g.toB[i] = netip.AddrPortFrom(lo, portA), netip.AddrPortFrom(lo, portB)
	g.byPortA[portA], g.byPortB[portB] = i, i
}

// run sends for 2 s of warm-up, secs measured seconds and 1 s of drain,
// and returns the frames of the measured window and pid's CPU over it.
func (g *relayGen) run(t *testing.T, pid, secs int) relayResult {
	t.Helper()
	g.wg.Add(2)
	go g.recv(g.a, g.byPortA, g.inBA, g.gotBA)
	go g.recv(g.b, g.byPortB, g.inAB, g.gotAB)
	const warm, drain = 100, 50 // frames
	total := warm + 50*secs + drain
	ptAB, ptBA := uint8(0), uint8(0)
	if g.mode == "transcode" {
		ptBA = 8
	}
	encAB, encBA := g.inAB, g.inBA // the digits must be the ones read back
	// One packet buffer per call and side; each 1 ms slot's packets go out
	// in one sendmmsg per side (x/net/ipv4 WriteBatch), so the generator
	// keeps its pace with few system calls.
	pa, pb := ipv4.NewPacketConn(g.a), ipv4.NewPacketConn(g.b)
	msgA, msgB := make([]ipv4.Message, g.n), make([]ipv4.Message, g.n)
	for i := range g.n {
		msgA[i] = ipv4.Message{Buffers: [][]byte{make([]byte, 12+160)}, Addr: net.UDPAddrFromAddrPort(g.toA[i])}
		msgB[i] = ipv4.Message{Buffers: [][]byte{make([]byte, 12+160)}, Addr: net.UDPAddrFromAddrPort(g.toB[i])}
	}
	batchA, batchB := make([]ipv4.Message, 0, g.n), make([]ipv4.Message, 0, g.n)
	var sentAB, sentBA int64
	var cpu0, gen0 time.Duration
	var t0 time.Time
	g.k1.Store(int64(warm + 50*secs))
	start := time.Now()
	const slots = 20 // 1 ms slots: the calls' packets spread over the 20 ms
	var lateness []time.Duration
	for k := range total {
		if k == warm {
			g.k0.Store(int64(k))
			cpu0, gen0, t0 = procCPU(pid), selfCPU(), time.Now()
		}
		inWin := k >= warm && k < warm+50*secs
		for s := range slots {
			due := start.Add(time.Duration(k)*20*time.Millisecond + time.Duration(s)*time.Millisecond)
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			if inWin {
				lateness = append(lateness, time.Since(due))
			}
			batchA, batchB = batchA[:0], batchB[:0]
			for i := s; i < g.n; i += slots {
				encAB.packet(msgA[i].Buffers[0], ptAB, uint32(i), uint32(k))
				encBA.packet(msgB[i].Buffers[0], ptBA, uint32(i), uint32(k))
				batchA, batchB = append(batchA, msgA[i]), append(batchB, msgB[i])
			}
			a, b := sendBatch(pa, batchA), sendBatch(pb, batchB)
			if inWin {
				sentAB += int64(a)
				sentBA += int64(b)
			}
		}
	}
	wall := time.Since(t0)
	cpu, gen := procCPU(pid)-cpu0, selfCPU()-gen0 // window plus the 1 s drain
	time.Sleep(300 * time.Millisecond)
	var gotAB, gotBA int64
	for i := range g.n {
		gotAB += g.gotAB[i].Load()
		gotBA += g.gotBA[i].Load()
	}
	slices.Sort(lateness)
	r := relayResult{sentAB: sentAB, gotAB: gotAB, sentBA: sentBA, gotBA: gotBA, cpu: cpu, genCPU: gen, wall: wall, load: benchLoad()}
	if len(lateness) > 0 {
		r.late99, r.lateMax = lateness[len(lateness)*99/100], lateness[len(lateness)-1]
	}
	return r
}

// sendBatch sends ms with sendmmsg, retrying the rest after a partial
// send, and returns how many went out.
func sendBatch(pc *ipv4.PacketConn, ms []ipv4.Message) int {
	sent := 0
	for sent < len(ms) {
		n, err := pc.WriteBatch(ms[sent:], 0)
		if err != nil {
			return sent
		}
		sent += n
	}
	return sent
}

// recv counts the marked frames of the window arriving on c (recvmmsg,
// 64 datagrams per call).
func (g *relayGen) recv(c *net.UDPConn, byPort map[uint16]int, mc *markCodec, got []atomic.Int64) {
	defer g.wg.Done()
	g.mu.Lock()
	ports := make(map[uint16]int, len(byPort))
	for p, i := range byPort {
		ports[p] = i
	}
	g.mu.Unlock()
	pc := ipv4.NewPacketConn(c)
	ms := make([]ipv4.Message, 64)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, 1500)}
	}
	for {
		k, err := pc.ReadBatch(ms, 0)
		if err != nil {
			return
		}
		for _, m := range ms[:k] {
			ua, _ := m.Addr.(*net.UDPAddr)
			if ua == nil {
				continue
			}
			i, ok := ports[uint16(ua.Port)]
			if !ok || m.N < 12+12 {
				continue
			}
			call, k, ok := mc.read(m.Buffers[0][12:m.N])
			if !ok || int(call) != i {
				continue
			}
			if int64(k) >= g.k0.Load() && int64(k) < g.k1.Load() {
				got[i].Add(1)
			}
		}
	}
}

// markCodec writes a call number and a frame number into a G.711 payload
// as 12 hex digits, each digit one of 16 octet values of the sending codec
// whose images in the receiving codec (after decode and re-encode, when
// they differ) are distinct, so they are read back unambiguously.
type markCodec struct {
	digit [16]byte // sending octet of each digit
	back  [256]int // received octet -> digit, -1 when none
}

func newMarkCodec(send, recv codecs.Codec) *markCodec {
	m := &markCodec{}
	for i := range m.back {
		m.back[i] = -1
	}
	pcm := make([]int16, 1)
	out := make([]byte, 1)
	used := map[byte]bool{}
	silence := make([]byte, 1)
	_, _ = recv.Encode(silence, []int16{0})
	d := 0
	for v := 0; v < 256 && d < 16; v += 3 {
		_, _ = send.Decode(pcm, []byte{byte(v)})
		img := byte(v)
		if send.Descriptor().Name != recv.Descriptor().Name {
			_, _ = recv.Encode(out, pcm)
			img = out[0]
		}
		if used[img] || img == silence[0] || pcm[0] > -2000 && pcm[0] < 2000 {
			continue // quiet values could be mistaken for concealment
		}
		used[img] = true
		m.digit[d], m.back[img] = byte(v), d
		d++
	}
	return m
}

// packet fills pkt with an RTP packet: header, then the marked payload.
func (m *markCodec) packet(pkt []byte, pt uint8, call, k uint32) {
	pkt[0], pkt[1] = 0x80, pt
	binary.BigEndian.PutUint16(pkt[2:], uint16(k))
	binary.BigEndian.PutUint32(pkt[4:], k*160)
	binary.BigEndian.PutUint32(pkt[8:], 0x10000+call)
	p := pkt[12:]
	v := uint64(call)<<32 | uint64(k)
	for j := range 12 {
		p[j] = m.digit[(v>>(4*(11-j)))&15]
	}
	for j := 12; j < len(p); j++ {
		p[j] = m.digit[j&15]
	}
}

// read returns the call and frame number of a marked payload.
func (m *markCodec) read(p []byte) (call, k uint32, ok bool) {
	var v uint64
	for j := range 12 {
		d := m.back[p[j]]
		if d < 0 {
			return 0, 0, false
		}
		v = v<<4 | uint64(d)
	}
	return uint32(v >> 32), uint32(v), true
}

// procCPU is pid's user+system CPU time (from /proc/PID/stat, all its
// threads).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.Atoi(f[11])
	k, _ := strconv.Atoi(f[12])
	return time.Duration(u+k) * 10 * time.Millisecond // USER_HZ 100
}

func selfCPU() time.Duration { return procCPU(os.Getpid()) }

// procRSS is pid's resident set in bytes.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func selfRSS() int64 { return procRSS(os.Getpid()) }

func benchLoad() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func benchList(name, def string) []string {
	v := os.Getenv(name)
	if v == "" {
		v = def
	}
	return strings.Split(v, ",")
}

func benchInts(t *testing.T, name string, def []int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for _, s := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a comma list of positive integers", name, v)
		}
		out = append(out, n)
	}
	return out
}

// The load generator's markers survive µ-law and A-law relaying and
// transcoding both ways, and silence is not read as a frame.
func TestRelayBenchMarks(t *testing.T) {
	t.Parallel()
	u, a := codecs.PCMU(), codecs.PCMA()
	for _, c := range []struct{ send, recv codecs.Codec }{{u, u}, {a, a}, {u, a}, {a, u}} {
		mc := newMarkCodec(c.send, c.recv)
		pkt := make([]byte, 12+160)
		mc.packet(pkt, 0, 1999, 123456)
		p := pkt[12:]
		if c.send != c.recv { // what the gateway does: decode, re-encode
			pcm := make([]int16, 160)
			if _, err := c.send.Decode(pcm, p); err != nil {
				t.Fatal(err)
			}
			p = make([]byte, 160)
			if _, err := c.recv.Encode(p, pcm); err != nil {
				t.Fatal(err)
			}
		}
		call, k, ok := mc.read(p)
		if !ok || call != 1999 || k != 123456 {
			t.Fatalf("%s -> %s: read %d %d %v, want 1999 123456", c.send.Descriptor().Name, c.recv.Descriptor().Name, call, k, ok)
		}
		silence := make([]byte, 160)
		if _, err := c.recv.Encode(silence, make([]int16, 160)); err != nil {
			t.Fatal(err)
		}
		if _, _, ok := mc.read(silence); ok {
			t.Fatalf("%s -> %s: silence read as a frame", c.send.Descriptor().Name, c.recv.Descriptor().Name)
		}
	}
}

// FuzzBdecode: the ng reply decoder of the benchmark never panics, and
// what it decodes encodes back to an input it decodes the same way.
func FuzzBdecode(f *testing.F) {
	f.Add([]byte("d6:result2:ok3:sdp4:v=0\re"))
	f.Add([]byte("d4:listl1:ai-3ee1:dd0:0:ee"))
	f.Add([]byte("i12"))
	f.Add([]byte("999999999999:x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, _, err := bdecode(b)
		if err != nil {
			return
		}
		var out bytes.Buffer
		bencode(&out, v)
		w, rest, err := bdecode(out.Bytes())
		if err != nil || len(rest) != 0 {
			t.Fatalf("re-encoded %q does not decode: %v (rest %q)", out.Bytes(), err, rest)
		}
		var again bytes.Buffer
		bencode(&again, w)
		if !bytes.Equal(out.Bytes(), again.Bytes()) {
			t.Fatalf("not stable: %q then %q", out.Bytes(), again.Bytes())
		}
	})
}
