package gateway

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

const testInvite = "INVITE sip:alice@127.0.0.1 SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n" +
	"From: <sip:desk@127.0.0.1>;tag=1\r\nTo: <sip:alice@127.0.0.1>\r\n" +
	"Call-ID: abc-123@127.0.0.1\r\nCSeq: 1 INVITE\r\n" +
	"Authorization: Digest username=\"desk\", response=\"secret\"\r\n" +
	"Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n"

func TestParseSIPHead(t *testing.T) {
	e, rest, ok := parseSIPHead([]byte(testInvite))
	if !ok || e.method != "INVITE" || e.status != 0 || e.callID != "abc-123@127.0.0.1" || e.cseq != "1 INVITE" || len(rest) != 0 {
		t.Fatalf("INVITE: %+v rest %q ok %v", e, rest, ok)
	}
	resp := "SIP/2.0 200 OK\r\ni: xyz\r\nCSeq: 2 BYE\r\nl: 0\r\n\r\n"
	e, rest, ok = parseSIPHead([]byte(resp + testInvite))
	if !ok || e.status != 200 || e.method != "" || e.callID != "xyz" || e.cseq != "2 BYE" || string(rest) != testInvite {
		t.Fatalf("200 with compact headers: %+v rest %q ok %v", e, rest, ok)
	}
	for _, bad := range []string{"", "\r\n", "hello world\r\n\r\n", "SIP/2.0 99 x\r\n\r\n", "SIP/2.0 abc\r\n", "INVITE sip:x SIP/3.0\r\n\r\n", "v=0\r\na=rtpmap\r\n"} {
		if _, _, ok := parseSIPHead([]byte(bad)); ok {
			t.Errorf("%q parsed as a SIP message", bad)
		}
	}
}

func TestSIPLogRingAndWindow(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newSIPLog(4, func() time.Time { return now })
	for i := range 6 {
		now = time.Unix(1000+int64(i), 0)
		l.record(i%2 == 0, "UDP", "127.0.0.1:5070", []byte(strings.Replace(testInvite, "abc-123", "c"+string(rune('0'+i)), 1)))
	}
	// The ring kept the last 4 (c2..c5).
	got := l.between([]string{"c1@127.0.0.1", "c2@127.0.0.1", "c5@127.0.0.1"}, time.Unix(0, 0), time.Unix(2000, 0))
	if len(got) != 2 || got[0].CallID != "c2@127.0.0.1" || got[1].CallID != "c5@127.0.0.1" {
		t.Fatalf("ring: %+v", got)
	}
	if got[0].Dir != "sent" || got[1].Dir != "received" || got[0].Remote != "udp:127.0.0.1:5070" || got[0].Method != "INVITE" {
		t.Fatalf("fields: %+v", got[0])
	}
	if got := l.between([]string{"c5@127.0.0.1"}, time.Unix(1000, 0), time.Unix(1004, 0)); len(got) != 0 {
		t.Fatalf("window: c5 at 1005 is outside [1000,1004]: %+v", got)
	}
	if got := l.between(nil, time.Unix(0, 0), time.Unix(2000, 0)); got == nil || len(got) != 0 {
		t.Fatalf("no call ids: %v", got)
	}
}

// Messages come out in the order of their times, not of the ring: the
// answer to a request may be stored first (a write's time is taken when
// the socket write returns; the reader may take the lock before it).
func TestSIPLogOrderByTime(t *testing.T) {
	var now time.Time
	l := newSIPLog(8, func() time.Time { return now })
	bye := "BYE sip:desk SIP/2.0\r\nCall-ID: d-1\r\nCSeq: 2 BYE\r\n\r\n"
	ok := "SIP/2.0 200 OK\r\nCall-ID: d-1\r\nCSeq: 2 BYE\r\n\r\n"
	now = time.Unix(1000, 600)
	l.record(false, "UDP", "127.0.0.1:5070", []byte(ok))
	now = time.Unix(1000, 500)
	l.record(true, "UDP", "127.0.0.1:5070", []byte(bye))
	got := l.between([]string{"d-1"}, time.Unix(999, 0), time.Unix(1001, 0))
	if len(got) != 2 || got[0].Method != "BYE" || got[1].Status != 200 {
		t.Fatalf("want the BYE then its 200: %+v", got)
	}
}

// A sent message's time is taken when its write returns, so on a busy
// machine the answer it caused can be stamped first (seen in CI: the
// phone's 180 before our INVITE, its ACK before our 200). The log puts
// causes first whatever the times say.
func TestSIPLogCausalOrder(t *testing.T) {
	var now time.Time
	l := newSIPLog(16, func() time.Time { return now })
	msg := func(sent bool, at int64, m string) {
		now = time.Unix(1000, at)
		l.record(sent, "UDP", "127.0.0.1:5070", []byte(m))
	}
	head := "Call-ID: d-2\r\n"
	// A challenged INVITE: the phone's ACK for our 407 stamped before it.
	msg(false, 10, "INVITE sip:gw SIP/2.0\r\nCall-ID: d-2\r\nCSeq: 7 INVITE\r\n\r\n")
	msg(false, 20, "ACK sip:gw SIP/2.0\r\nCall-ID: d-2\r\nCSeq: 7 ACK\r\n\r\n")
	msg(true, 30, "SIP/2.0 407 Proxy Authentication Required\r\nCall-ID: d-2\r\nCSeq: 7 INVITE\r\n\r\n")
	msg(false, 100, "SIP/2.0 180 Ringing\r\n"+head+"CSeq: 1 INVITE\r\n\r\n")
	msg(false, 300, "ACK sip:gw SIP/2.0\r\n"+head+"CSeq: 1 ACK\r\n\r\n")
	msg(true, 200, "INVITE sip:desk SIP/2.0\r\n"+head+"CSeq: 1 INVITE\r\n\r\n")
	msg(false, 250, "SIP/2.0 200 OK\r\n"+head+"CSeq: 1 INVITE\r\n\r\n")
	// An answer stamped after its cause stays where its time puts it.
	msg(true, 400, "BYE sip:desk SIP/2.0\r\n"+head+"CSeq: 2 BYE\r\n\r\n")
	msg(false, 500, "SIP/2.0 200 OK\r\n"+head+"CSeq: 2 BYE\r\n\r\n")
	got := l.between([]string{"d-2"}, time.Unix(999, 0), time.Unix(1001, 0))
	var seq []string
	for _, m := range got {
		if m.Status != 0 {
			seq = append(seq, m.Dir+" "+strconv.Itoa(m.Status)+" "+m.CSeq)
		} else {
			seq = append(seq, m.Dir+" "+m.Method)
		}
	}
	want := []string{"received INVITE", "sent 407 7 INVITE", "received ACK", "sent INVITE", "received 180 1 INVITE", "received 200 1 INVITE", "received ACK", "sent BYE", "received 200 2 BYE"}
	if !slices.Equal(seq, want) {
		t.Fatalf("order:\n got %q\nwant %q", seq, want)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Time.Before(got[i-1].Time) {
			t.Errorf("message %d (%s) is stamped before the one it follows", i, seq[i])
		}
	}
}

func TestTracerFilesByListener(t *testing.T) {
	l := newSIPLog(8, nil)
	tracer.add("udp", "127.0.0.1:59999", l)
	defer tracer.remove("udp", "127.0.0.1:59999", l)
	tracer.SIPTraceRead("UDP", "127.0.0.1:59998", "127.0.0.1:5070", []byte(testInvite)) // another UA
	tracer.SIPTraceWrite("UDP", "127.0.0.1:59999", "127.0.0.1:5070", []byte(testInvite))
	got := l.between([]string{"abc-123@127.0.0.1"}, time.Now().Add(-time.Minute), time.Now().Add(time.Minute))
	if len(got) != 1 || got[0].Dir != "sent" {
		t.Fatalf("want only our listener's write: %+v", got)
	}
}

// A wildcard listener is filed by port, and sipgo reports the socket's
// real address: "0.0.0.0:5060" on UDP, the interface address the phone
// reached on an accepted TCP or TLS connection. TLS shows as tls, though
// sipgo names it TCP; another UA's TCP socket on the same port number of
// another transport is not ours.
func TestTracerWildcardListenerAndTLS(t *testing.T) {
	l := newSIPLog(16, nil)
	h := &handoffLog{sip: l}
	h.listen("udp", "0.0.0.0:59990")
	h.listen("tls", "[::]:59991")
	defer h.close()
	tracer.SIPTraceRead("UDP", "0.0.0.0:59990", "127.0.0.5:5070", []byte(testInvite))
	tracer.SIPTraceRead("TCP", "127.0.0.5:59991", "127.0.0.5:40000", []byte(testInvite))
	tracer.SIPTraceRead("TCP", "127.0.0.5:59990", "127.0.0.5:40001", []byte(testInvite)) // TCP, not our UDP port
	tracer.SIPTraceRead("UDP", "127.0.0.5:59991", "127.0.0.5:40002", []byte(testInvite)) // UDP, not our TLS port
	got := l.between([]string{"abc-123@127.0.0.1"}, time.Now().Add(-time.Minute), time.Now().Add(time.Minute))
	var remotes []string
	for _, m := range got {
		remotes = append(remotes, m.Remote)
	}
	if want := []string{"udp:127.0.0.5:5070", "tls:127.0.0.5:40000"}; !slices.Equal(remotes, want) {
		t.Fatalf("messages from %v, want %v", remotes, want)
	}
	h.close()
	tracer.SIPTraceRead("UDP", "0.0.0.0:59990", "127.0.0.5:5070", []byte(testInvite))
	if n := len(l.between([]string{"abc-123@127.0.0.1"}, time.Now().Add(-time.Minute), time.Now().Add(time.Minute))); n != 2 {
		t.Fatalf("after close: %d messages, want still 2", n)
	}
}

// traceConn is a connection in a sipgo pool, as one the gateway dialed.
type traceConn struct {
	laddr net.Addr
	ref   int
}

func (c *traceConn) LocalAddr() net.Addr        { return c.laddr }
func (c *traceConn) WriteMsg(sip.Message) error { return nil }
func (c *traceConn) Ref(i int) int              { c.ref += i; return c.ref }
func (c *traceConn) TryClose() (int, error)     { c.ref--; return c.ref, nil }
func (c *traceConn) Close() error               { return nil }

// A request the gateway sends over a TCP or TLS connection it opened (an
// ephemeral local port, no listener's) is filed by the connection: its
// local address is in the gateway's pool. One not in it is another UA's.
// Looking a connection up leaves its reference count as it was.
func TestTracerFilesDialedConnections(t *testing.T) {
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	l := newSIPLog(16, nil)
	h := &handoffLog{sip: l}
	h.dialed(ua.TransportLayer())
	defer h.close()
	tcp := &traceConn{laddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 41000}, ref: 2}
	tlsConn := &traceConn{laddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 41001}, ref: 2}
	ua.TransportLayer().Pool("tcp").Add("127.0.0.1:41000", tcp)
	ua.TransportLayer().Pool("tls").Add("127.0.0.1:41001", tlsConn)
	tracer.SIPTraceWrite("TCP", "127.0.0.1:41000", "127.0.0.5:5060", []byte(testInvite))
	tracer.SIPTraceWrite("TCP", "127.0.0.1:41001", "127.0.0.5:5061", []byte(testInvite))
	tracer.SIPTraceWrite("TCP", "127.0.0.1:41002", "127.0.0.5:5060", []byte(testInvite)) // another UA's
	got := l.between([]string{"abc-123@127.0.0.1"}, time.Now().Add(-time.Minute), time.Now().Add(time.Minute))
	var remotes []string
	for _, m := range got {
		remotes = append(remotes, m.Dir+" "+m.Remote)
	}
	if want := []string{"sent tcp:127.0.0.5:5060", "sent tls:127.0.0.5:5061"}; !slices.Equal(remotes, want) {
		t.Fatalf("messages %v, want %v", remotes, want)
	}
	if tcp.ref != 2 || tlsConn.ref != 2 {
		t.Fatalf("references after the lookups: tcp %d, tls %d, want 2 and 2", tcp.ref, tlsConn.ref)
	}
}

func TestSendGaps(t *testing.T) {
	l := &leg{}
	t0 := time.Now().Add(-10 * time.Second)
	for i := range 10 {
		l.gaps.sent(t0.Add(time.Duration(i) * 20 * time.Millisecond))
	}
	at := t0.Add(180 * time.Millisecond)
	l.gaps.sent(at.Add(120 * time.Millisecond)) // a 120 ms pause
	for i := 1; i < 5; i++ {
		l.gaps.sent(at.Add(120*time.Millisecond + time.Duration(i)*20*time.Millisecond))
	}
	last := at.Add(200 * time.Millisecond)
	if g := l.longestGap(t0, last, false); g != 120*time.Millisecond {
		t.Fatalf("longest gap %v, want 120ms", g)
	}
	// Nothing sent after last: while the handoff runs the pause counts
	// to the window's end; once it finished only ended pauses count.
	if g := l.longestGap(t0, last.Add(time.Second), true); g != time.Second {
		t.Fatalf("stopped stream, running: gap %v, want 1s", g)
	}
	if g := l.longestGap(t0, last.Add(time.Second), false); g != 120*time.Millisecond {
		t.Fatalf("stopped stream, finished: gap %v, want 120ms", g)
	}
	if g := l.longestGap(t0, t0.Add(100*time.Millisecond), false); g != 0 {
		t.Fatalf("gap outside the window counted: %v", g)
	}
}

func FuzzParseSIPHead(f *testing.F) {
	f.Add([]byte(testInvite))
	f.Add([]byte("SIP/2.0 180 Ringing\r\nCall-ID: x\r\nContent-Length: 99999\r\n\r\n"))
	f.Add([]byte("BYE sip:x SIP/2.0\r\nl: -5\r\n\r\nINVITE"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for i := 0; len(b) > 0 && i < 100; i++ {
			e, rest, ok := parseSIPHead(b)
			if !ok {
				return
			}
			if e.method == "" && (e.status < 100 || e.status > 699) {
				t.Fatalf("neither request nor response: %+v", e)
			}
			if len(rest) >= len(b) {
				t.Fatalf("no progress: %d of %d", len(rest), len(b))
			}
			b = rest
		}
	})
}

// BenchmarkSIPLogRecord is the cost the tracer adds to one SIP message.
func BenchmarkSIPLogRecord(b *testing.B) {
	l := newSIPLog(sipLogSize, nil)
	tracer.add("udp", "127.0.0.1:59997", l)
	defer tracer.remove("udp", "127.0.0.1:59997", l)
	msg := []byte(testInvite)
	b.ReportAllocs()
	for b.Loop() {
		tracer.SIPTraceRead("UDP", "127.0.0.1:59997", "127.0.0.1:5070", msg)
	}
}

// BenchmarkSIPTracerOtherUA is the cost for a message of another UA in the
// same process (not filed).
func BenchmarkSIPTracerOtherUA(b *testing.B) {
	msg := []byte(testInvite)
	b.ReportAllocs()
	for b.Loop() {
		tracer.SIPTraceRead("UDP", "127.0.0.1:59996", "127.0.0.1:5070", msg)
	}
}

// BenchmarkSIPTracerOtherUATCP is the cost for a TCP message of another
// UA in the same process while a gateway is registered: the listener
// look-ups, then its pools (the connections it dialed).
func BenchmarkSIPTracerOtherUATCP(b *testing.B) {
	ua, err := sipgo.NewUA()
	if err != nil {
		b.Fatal(err)
	}
	defer ua.Close()
	h := &handoffLog{sip: newSIPLog(sipLogSize, nil)}
	h.listen("tcp", "127.0.0.1:59995")
	h.dialed(ua.TransportLayer())
	defer h.close()
	msg := []byte(testInvite)
	b.ReportAllocs()
	for b.Loop() {
		tracer.SIPTraceRead("TCP", "127.0.0.1:59994", "127.0.0.1:5070", msg)
	}
}

// BenchmarkSIPTracerWildcard is BenchmarkSIPLogRecord for a wildcard
// listener (the exact look-up misses, the port one files it).
func BenchmarkSIPTracerWildcard(b *testing.B) {
	h := &handoffLog{sip: newSIPLog(sipLogSize, nil)}
	h.listen("udp", "0.0.0.0:59993")
	defer h.close()
	msg := []byte(testInvite)
	b.ReportAllocs()
	for b.Loop() {
		tracer.SIPTraceRead("UDP", "0.0.0.0:59993", "127.0.0.1:5070", msg)
	}
}

// BenchmarkSendGaps is what the send-gap ring adds to each RTP packet sent
// to a phone (leg.send): a clock read and a short critical section.
func BenchmarkSendGaps(b *testing.B) {
	var s sendGaps
	b.ReportAllocs()
	for b.Loop() {
		s.sent(time.Now())
	}
}
