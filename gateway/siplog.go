package gateway

import (
	"bytes"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/baton-voice/baton/p2p/control"
)

// The SIP message log (issue 9 §5): every SIP message a gateway's
// listeners send or receive, first line and two headers, in a bounded
// ring per gateway. It hooks sipgo's process-wide tracer (sip.SIPDebug
// and sip.SIPDebugTracer), which sees the raw bytes of every read and
// write of every transport with its local and remote addresses: one
// hook covers every message of every call site (transactions, dialogs,
// retransmissions, the 100 Trying sipgo sends itself), which hooks at
// our own call sites could not. The tracer is one per process (`baton
// demo` and the tests run other sipgo UAs beside the gateway), so
// messages are filed by the local address they crossed: a gateway
// registers its listeners' addresses and sees only its own.

// sipLogSize bounds a gateway's message log.
const sipLogSize = 4096

// sipEntry is one logged message; the strings are copies (the tracer's
// buffer is reused by the transport).
type sipEntry struct {
	at     time.Time
	sent   bool
	method string
	status int
	callID string
	cseq   string
	// transport ("UDP") and raddr are sipgo's strings, joined only when
	// read (message).
	transport, raddr string
}

// sipLog is a gateway's ring of SIP messages.
type sipLog struct {
	mu   sync.Mutex
	ring []sipEntry
	next int  // where the next entry goes
	full bool // the ring has wrapped
	now  func() time.Time
}

func newSIPLog(size int, now func() time.Time) *sipLog {
	if now == nil {
		now = time.Now
	}
	return &sipLog{ring: make([]sipEntry, size), now: now}
}

// record parses msg (one or, on a stream transport, several messages or a
// piece of one) and logs each message that starts with a SIP start line.
// A piece that does not (the rest of a message split across reads) is
// skipped: a stream transport reads what the socket has.
func (l *sipLog) record(sent bool, transport, raddr string, msg []byte) {
	now := l.now()
	for len(msg) > 0 {
		e, rest, ok := parseSIPHead(msg)
		if !ok {
			return
		}
		e.at, e.sent = now, sent
		e.transport, e.raddr = transport, raddr
		l.mu.Lock()
		l.ring[l.next] = e
		l.next++
		if l.next == len(l.ring) {
			l.next, l.full = 0, true
		}
		l.mu.Unlock()
		msg = rest
	}
}

// between returns the messages of the given SIP Call-IDs logged in
// [from, to], oldest first (by their times).
func (l *sipLog) between(callIDs []string, from, to time.Time) []control.SIPMessage {
	out := []control.SIPMessage{}
	if len(callIDs) == 0 {
		return out
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n, start := l.next, 0
	if l.full {
		n, start = len(l.ring), l.next
	}
	for i := range n {
		e := &l.ring[(start+i)%len(l.ring)]
		if e.at.Before(from) || e.at.After(to) {
			continue
		}
		for _, id := range callIDs {
			if e.callID == id {
				out = append(out, e.message())
				break
			}
		}
	}
	// The ring is in the order the entries were stored, which is not
	// always the order of their times: a write's time is taken when the
	// socket write returns, and the reading goroutine may store the
	// answer before the writer gets the lock (a BYE's 200 before the BYE).
	slices.SortStableFunc(out, func(a, b control.SIPMessage) int { return a.Time.Compare(b.Time) })
	causalOrder(out)
	return out
}

// causalOrder fixes what the times cannot: a sent message's time is taken
// when its write returns, so on a busy machine the answer it caused can
// carry an earlier time (the phone's 180 before our INVITE, its ACK before
// our 200). A request goes before the responses to it, and a final
// response to an INVITE (2xx, or a 407 whose ACK is hop by hop) before
// the ACK for it, with its time clamped to its answer's; everything
// else keeps its time order.
func causalOrder(out []control.SIPMessage) {
	for i := 0; i < len(out); i++ {
		m := out[i]
		for j := i + 1; j < len(out); j++ {
			if causes(out[j], m) {
				c := out[j]
				if c.Time.After(m.Time) {
					// It was on the wire no later than its answer.
					c.Time = m.Time
				}
				copy(out[i+1:j+1], out[i:j])
				out[i] = c
				i-- // look again at the one moved in: it may have a cause too
				break
			}
		}
	}
}

// causes says whether a (in the other direction) must precede b: the
// request b answers, or the final response to the INVITE an ACK b
// acknowledges.
func causes(a, b control.SIPMessage) bool {
	if a.CallID != b.CallID || a.Dir == b.Dir {
		return false
	}
	switch {
	case b.Status != 0: // a response: its request has the same CSeq
		return a.Status == 0 && a.CSeq == b.CSeq
	case b.Method == "ACK":
		num, _, _ := strings.Cut(b.CSeq, " ")
		return a.Status >= 200 && a.CSeq == num+" INVITE"
	}
	return false
}

func (e *sipEntry) message() control.SIPMessage {
	m := control.SIPMessage{Time: e.at, Dir: "received", Method: e.method, Status: e.status, CallID: e.callID, CSeq: e.cseq, Remote: strings.ToLower(e.transport) + ":" + e.raddr}
	if e.sent {
		m.Dir = "sent"
	}
	return m
}

var (
	crlf     = []byte("\r\n")
	sipSlash = []byte("SIP/2.0 ")
)

// parseSIPHead reads a message's start line, Call-ID and CSeq (long or
// compact form), and returns the bytes after the message (by its
// Content-Length) for a stream transport's next message. ok is false when
// msg does not start with a SIP start line or its header is cut.
func parseSIPHead(msg []byte) (e sipEntry, rest []byte, ok bool) {
	i := bytes.Index(msg, crlf)
	if i <= 0 {
		return e, nil, false
	}
	first := msg[:i]
	if bytes.HasPrefix(first, sipSlash) {
		code := first[len(sipSlash):]
		if len(code) < 3 {
			return e, nil, false
		}
		n, ok := atoi(code[:3])
		if !ok || n < 100 || n > 699 {
			return e, nil, false
		}
		e.status = n
	} else {
		sp := bytes.IndexByte(first, ' ')
		if sp <= 0 || !bytes.HasSuffix(first, []byte(" SIP/2.0")) {
			return e, nil, false
		}
		e.method = methodName(first[:sp])
	}
	body := -1
	length := 0
	for p := i + 2; p < len(msg); {
		j := bytes.Index(msg[p:], crlf)
		if j < 0 {
			return e, nil, false
		}
		line := msg[p : p+j]
		p += j + 2
		if len(line) == 0 {
			body = p
			break
		}
		c := bytes.IndexByte(line, ':')
		if c <= 0 {
			continue
		}
		name := bytes.TrimSpace(line[:c])
		val := bytes.TrimSpace(line[c+1:])
		switch {
		case headerIs(name, "call-id", "i"):
			e.callID = string(val)
		case headerIs(name, "cseq", ""):
			e.cseq = string(val)
		case headerIs(name, "content-length", "l"):
			if n, ok := atoi(val); ok {
				length = n
			}
		}
	}
	if body < 0 {
		// A datagram without the blank line still names its message.
		return e, nil, e.callID != ""
	}
	if length < 0 || body+length >= len(msg) {
		return e, nil, true
	}
	return e, msg[body+length:], true
}

// atoi parses a short unsigned decimal without allocating.
func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func headerIs(name []byte, long, compact string) bool {
	if compact != "" && len(name) == 1 {
		return strings.EqualFold(string(name), compact)
	}
	return len(name) == len(long) && strings.EqualFold(string(name), long)
}

// methodName returns the method's constant string for the common methods
// (no allocation), a copy for others.
func methodName(b []byte) string {
	for _, m := range knownMethods {
		if string(b) == m {
			return m
		}
	}
	return string(b)
}

var knownMethods = []string{
	string(sip.INVITE), string(sip.ACK), string(sip.BYE), string(sip.CANCEL), string(sip.REGISTER),
	string(sip.OPTIONS), string(sip.SUBSCRIBE), string(sip.NOTIFY), string(sip.REFER), string(sip.INFO),
	string(sip.UPDATE), string(sip.PRACK), string(sip.MESSAGE),
}

// sipTracer is the process's sipgo tracer: it files each message under
// the gateway whose socket it crossed.
//
// sipgo reports the socket's local address, which for a wildcard
// listener (":5060", "0.0.0.0:5060") is "0.0.0.0:5060" on UDP and the
// interface address the phone reached ("127.0.0.5:5060") on an accepted
// TCP or TLS connection: a miss on the exact address is retried by port
// (":5060"). It names TLS "TCP" (its TLS transport is its TCP one over a
// tls.Conn): the listener, or the pool the connection is in, says which.
//
// A request the gateway sends over a TCP or TLS connection it opened
// itself (a phone's Contact once the registration's connection is gone,
// a trunk over TCP) leaves from an ephemeral local port that no listener
// has. Such messages are filed by the connection: the gateway's transport
// layer keeps each connection it dialed in its pool under the
// connection's local address, for exactly as long as it is open, so a
// local address in a gateway's pool is that gateway's connection. Filing
// by dialog (Call-ID) instead would also file the other end's copy of
// every message when that end is a sipgo UA in the same process (`baton
// demo`, the tests), and would miss the messages of a dialog not linked
// to a call yet (a REGISTER to a trunk, an INVITE before its 200).
type sipTracer struct {
	mu    sync.RWMutex
	logs  map[traceKey]traceTarget
	pools []tracePools // the gateways' connections, for dialed ones
}

// traceTarget is a listener's log and its transport as the log names it
// ("TLS" where sipgo says "TCP").
type traceTarget struct {
	log       *sipLog
	transport string
}

// tracePools finds a gateway's own TCP or TLS connection by its local
// address.
type tracePools struct {
	log   *sipLog
	conns connPools
}

// connPools is what the tracer needs of a sipgo transport layer: its
// connection pool by network ("tcp", "tls").
type connPools interface {
	Pool(network string) *sip.ConnectionPool
}

var tracer = &sipTracer{logs: map[traceKey]traceTarget{}}

func init() {
	// Set once, before any transport runs: the transports read SIPDebug
	// without synchronisation. With no gateway registered the tracer
	// costs a map lookup per message.
	sip.SIPDebug = true
	sip.SIPDebugTracer(tracer)
}

// traceKey is the tracer's key for a socket: sipgo's transport name, which
// is "TCP" for TLS too, and the local address ("127.0.0.1:5060", or
// ":5060" for a wildcard listener). A struct, so a look-up allocates
// nothing.
type traceKey struct{ transport, laddr string }

// sipgoTransport is the transport name sipgo's tracer gives network's
// messages ("udp" -> "UDP", "tls" -> "TCP").
func sipgoTransport(network string) string {
	if n := strings.ToUpper(network); n != "TLS" {
		return n
	}
	return "TCP"
}

// add files the messages of the listener of network ("udp", "tcp",
// "tls") on laddr under l.
func (t *sipTracer) add(network, laddr string, l *sipLog) {
	t.mu.Lock()
	t.logs[traceKey{sipgoTransport(network), laddr}] = traceTarget{log: l, transport: strings.ToUpper(network)}
	t.mu.Unlock()
}

func (t *sipTracer) remove(network, laddr string, l *sipLog) {
	k := traceKey{sipgoTransport(network), laddr}
	t.mu.Lock()
	if t.logs[k].log == l {
		delete(t.logs, k)
	}
	t.mu.Unlock()
}

// addConns files the messages of the connections in c's pools under l.
func (t *sipTracer) addConns(c connPools, l *sipLog) {
	t.mu.Lock()
	t.pools = append(t.pools, tracePools{log: l, conns: c})
	t.mu.Unlock()
}

func (t *sipTracer) removeConns(l *sipLog) {
	t.mu.Lock()
	t.pools = slices.DeleteFunc(t.pools, func(p tracePools) bool { return p.log == l })
	t.mu.Unlock()
}

// find is the log of the socket laddr and the transport to name (""
// when none is a gateway's).
func (t *sipTracer) find(transport, laddr string) (*sipLog, string) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if e, ok := t.logs[traceKey{transport, laddr}]; ok {
		return e.log, e.transport
	}
	// A wildcard listener: sipgo names the socket's real address.
	if i := strings.LastIndexByte(laddr, ':'); i >= 0 {
		if e, ok := t.logs[traceKey{transport, laddr[i:]}]; ok {
			return e.log, e.transport
		}
	}
	if transport != "TCP" {
		return nil, ""
	}
	// A connection a gateway dialed, from an ephemeral port.
	for _, p := range t.pools {
		for _, network := range []string{"tls", "tcp"} {
			pool := p.conns.Pool(network)
			if pool == nil {
				continue
			}
			c := pool.Get(laddr) // takes a reference
			if c == nil {
				continue
			}
			c.Ref(-1)
			if c.LocalAddr().String() == laddr {
				return p.log, strings.ToUpper(network)
			}
		}
	}
	return nil, ""
}

func (t *sipTracer) SIPTraceRead(transport, laddr, raddr string, msg []byte) {
	if l, tr := t.find(transport, laddr); l != nil {
		l.record(false, tr, raddr, msg)
	}
}

func (t *sipTracer) SIPTraceWrite(transport, laddr, raddr string, msg []byte) {
	if l, tr := t.find(transport, laddr); l != nil {
		l.record(true, tr, raddr, msg)
	}
}
