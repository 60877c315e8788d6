package gateway

import (
	"bytes"
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
// [from, to], oldest first.
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
	return out
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
// the gateway whose listener it crossed.
type sipTracer struct {
	mu   sync.RWMutex
	logs map[string]*sipLog // by local address ("127.0.0.1:5060")
}

var tracer = &sipTracer{logs: map[string]*sipLog{}}

func init() {
	// Set once, before any transport runs: the transports read SIPDebug
	// without synchronisation. With no gateway registered the tracer
	// costs a map lookup per message.
	sip.SIPDebug = true
	sip.SIPDebugTracer(tracer)
}

func (t *sipTracer) add(laddr string, l *sipLog) {
	t.mu.Lock()
	t.logs[laddr] = l
	t.mu.Unlock()
}

func (t *sipTracer) remove(laddr string, l *sipLog) {
	t.mu.Lock()
	if t.logs[laddr] == l {
		delete(t.logs, laddr)
	}
	t.mu.Unlock()
}

func (t *sipTracer) find(laddr string) *sipLog {
	t.mu.RLock()
	l := t.logs[laddr]
	t.mu.RUnlock()
	return l
}

func (t *sipTracer) SIPTraceRead(transport, laddr, raddr string, msg []byte) {
	if l := t.find(laddr); l != nil {
		l.record(false, transport, raddr, msg)
	}
}

func (t *sipTracer) SIPTraceWrite(transport, laddr, raddr string, msg []byte) {
	if l := t.find(laddr); l != nil {
		l.record(true, transport, raddr, msg)
	}
}
