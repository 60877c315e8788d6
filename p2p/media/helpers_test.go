package media

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-voice/baton/codecs"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// linearCodec is a test double: 16-bit big-endian linear PCM (like L16,
// RFC 3551 §4.5.11) at 8 kHz under a dynamic payload type. It is exact, so
// a test can compare what was played with what was sent.
type linearCodec struct{ pt uint8 }

func (c linearCodec) Descriptor() codecs.Descriptor {
	return codecs.Descriptor{Name: "L16TEST", PayloadType: c.pt, SampleRate: 8000, ClockRate: 8000, Channels: 1}
}

func (linearCodec) Encode(dst []byte, pcm []int16) (int, error) {
	if len(dst) < 2*len(pcm) {
		return 0, codecs.ErrShortBuffer
	}
	for i, v := range pcm {
		binary.BigEndian.PutUint16(dst[2*i:], uint16(v))
	}
	return 2 * len(pcm), nil
}

var errOddPayload = errors.New("odd payload length")

func (linearCodec) Decode(dst []int16, payload []byte) (int, error) {
	if len(payload)%2 != 0 {
		return 0, errOddPayload
	}
	n := len(payload) / 2
	if len(dst) < n {
		return 0, codecs.ErrShortBuffer
	}
	for i := range n {
		dst[i] = int16(binary.BigEndian.Uint16(payload[2*i:]))
	}
	return n, nil
}

const testPT = 96

func testCodec() codecs.Codec { return linearCodec{pt: testPT} }

// exactValues are sample values that survive G.711 µ-law exactly (and any
// linear codec trivially): the distinct non-zero µ-law decoder outputs. A
// test frame built from them decodes to itself with PCMU or linearCodec.
var exactValues = func() []int16 {
	var all [256]byte
	for i := range all {
		all[i] = byte(i)
	}
	dec := make([]int16, 256)
	if _, err := codecs.PCMU().Decode(dec, all[:]); err != nil {
		panic(err)
	}
	seen := map[int16]bool{0: true}
	var out []int16
	for _, v := range dec {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}()

var exactIndex = func() map[int16]int {
	m := make(map[int16]int, len(exactValues))
	for i, v := range exactValues {
		m[v] = i
	}
	return m
}()

// patternFrame fills pcm with frame number k (k >= 1) of the stream tagged
// tag: samples 0-1 carry k in base len(exactValues), sample 2 the tag, the
// rest a pattern of both. Silence and faded repeats never match a pattern.
func patternFrame(pcm []int16, tag, k int) {
	b := len(exactValues)
	pcm[0] = exactValues[k%b]
	pcm[1] = exactValues[(k/b)%b]
	pcm[2] = exactValues[tag%b]
	for i := 3; i < len(pcm); i++ {
		pcm[i] = exactValues[(k*7+i*13+tag*31)%b]
	}
}

// parseFrame recovers (tag, k) from a frame made by patternFrame.
func parseFrame(pcm []int16) (tag, k int, ok bool) {
	if len(pcm) < 3 {
		return 0, 0, false
	}
	lo, ok0 := exactIndex[pcm[0]]
	hi, ok1 := exactIndex[pcm[1]]
	tg, ok2 := exactIndex[pcm[2]]
	if !ok0 || !ok1 || !ok2 {
		return 0, 0, false
	}
	k = hi*len(exactValues) + lo
	want := make([]int16, len(pcm))
	patternFrame(want, tg, k)
	for i := range pcm {
		if pcm[i] != want[i] {
			return 0, 0, false
		}
	}
	return tg, k, true
}

// patternSource is a deterministic audio.Source: frames 1, 2, 3... of
// its tag. It does not allocate.
type patternSource struct {
	tag  int
	next int
}

func (s *patternSource) ReadFrame(pcm []int16) error {
	s.next++
	patternFrame(pcm, s.tag, s.next)
	return nil
}

// playedFrame is one frame a recordingSink recognized.
type playedFrame struct{ tag, k int }

// recordingSink records which pattern frames were played and counts the
// others (concealment, silence).
type recordingSink struct {
	mu     sync.Mutex
	frames int
	real   []playedFrame
	other  int
}

func (s *recordingSink) WriteFrame(pcm []int16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames++
	if tag, k, ok := parseFrame(pcm); ok {
		s.real = append(s.real, playedFrame{tag, k})
	} else {
		s.other++
	}
	return nil
}

func (s *recordingSink) snapshot() (frames int, real []playedFrame, other int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frames, append([]playedFrame(nil), s.real...), s.other
}

func (s *recordingSink) realCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.real)
}

// countingSink counts frames without allocating.
type countingSink struct{ n int }

func (s *countingSink) WriteFrame([]int16) error { s.n++; return nil }

// eventually polls cond until it holds or the generous timeout expires.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// requireLoopback fails with a clear message when an address of
// 127.0.0.0/8 other than 127.0.0.1 cannot be bound (all of it can on Linux).
func requireLoopback(t *testing.T, ips ...string) {
	t.Helper()
	for _, ip := range ips {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
		if err != nil {
			t.Fatalf("cannot bind %s: this test needs every address of 127.0.0.0/8 on the loopback interface (true on Linux; on macOS run `sudo ifconfig lo0 alias %s`): %v", ip, ip, err)
		}
		_ = c.Close()
	}
}

func addr(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func mustKeys(t testing.TB) *Keys {
	t.Helper()
	k, err := NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	return &k
}

// openSession opens a session and closes it when the test ends.
func openSession(t testing.TB, cfg Config) *Session {
	t.Helper()
	if cfg.Codec == nil {
		cfg.Codec = testCodec()
	}
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// mediaGoroutines counts goroutines running this package's session code.
func mediaGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "p2p/media.(*Session)") {
			count++
		}
	}
	return count
}

// rawPeer is a plain UDP socket that speaks RTP by hand, to send exactly
// the packets a test needs (good, bad, replayed) and to read what a
// session sends.
type rawPeer struct {
	t    testing.TB
	conn *net.UDPConn
	addr netip.AddrPort
	ctx  *srtp.Context
	hdr  rtp.Header
	pcm  []int16
	next int
}

func newRawPeer(t testing.TB, ip string, keys *Keys) *rawPeer {
	t.Helper()
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	p := &rawPeer{
		t:    t,
		conn: conn,
		addr: conn.LocalAddr().(*net.UDPAddr).AddrPort(),
		hdr:  rtp.Header{Version: 2, PayloadType: testPT, SequenceNumber: 65530, Timestamp: 4294967000, SSRC: 0xfeed},
		pcm:  make([]int16, 160),
	}
	if keys != nil {
		p.ctx = p.context(keys)
	}
	return p
}

func (p *rawPeer) context(keys *Keys) *srtp.Context {
	ctx, err := srtp.CreateContext(keys.MasterKey[:], keys.MasterSalt[:], srtpProfile)
	if err != nil {
		p.t.Fatal(err)
	}
	return ctx
}

// packet builds the next pattern frame (tag 9) as an RTP packet, encrypted
// with ctx when not nil, and advances seq and timestamp.
func (p *rawPeer) packet(ctx *srtp.Context, pt uint8) []byte {
	p.t.Helper()
	p.next++
	patternFrame(p.pcm, 9, p.next)
	payload := make([]byte, 2*len(p.pcm))
	if _, err := testCodec().Encode(payload, p.pcm); err != nil {
		p.t.Fatal(err)
	}
	h := p.hdr
	h.PayloadType = pt
	pkt := &rtp.Packet{Header: h, Payload: payload}
	b, err := pkt.Marshal()
	if err != nil {
		p.t.Fatal(err)
	}
	if ctx != nil {
		if b, err = ctx.EncryptRTP(nil, b, nil); err != nil {
			p.t.Fatal(err)
		}
	}
	p.hdr.SequenceNumber++
	p.hdr.Timestamp += 160
	return b
}

func (p *rawPeer) send(to netip.AddrPort, b []byte) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort(b, to); err != nil {
		p.t.Fatal(err)
	}
}

// read returns the next RTP packet, or false after timeout.
func (p *rawPeer) read(timeout time.Duration) (rtp.Packet, bool) {
	p.t.Helper()
	buf := make([]byte, 2048)
	if err := p.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		p.t.Fatal(err)
	}
	n, _, err := p.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return rtp.Packet{}, false
		}
		p.t.Fatal(err)
	}
	var pkt rtp.Packet
	if err := pkt.Unmarshal(buf[:n]); err != nil {
		p.t.Fatalf("session sent a packet that is not RTP: %v", err)
	}
	return pkt, true
}
