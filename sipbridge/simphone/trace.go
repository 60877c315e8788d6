package simphone

import (
	"bytes"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Message is one SIP message the phone sent or received, as its trace
// keeps it: enough to draw it in a ladder and to check that nothing
// reached the phone in some window.
type Message struct {
	At time.Time
	// Out is true for a message the phone sent.
	Out bool
	// Remote is the far address, host:port.
	Remote string
	// Method is the request's method, or for a response its CSeq method.
	Method string
	// Status is a response's status code; 0 for a request.
	Status int
	// Line is the start line without the SIP version ("INVITE
	// sip:+15550100@127.0.0.1:5060", "200 OK").
	Line   string
	CallID string
	CSeq   string
	// Frag is the status line of a message/sipfrag body (a REFER's NOTIFY).
	Frag string
}

// Label is a short name for diagrams: "INVITE", "200 OK (INVITE)",
// "NOTIFY (SIP/2.0 100 Trying)".
func (m Message) Label() string {
	if m.Status != 0 {
		return m.Line + " (" + m.Method + ")"
	}
	if m.Frag != "" {
		return m.Method + " (" + m.Frag + ")"
	}
	return m.Method
}

// parseMessage reads the start line and a few headers of a SIP datagram;
// ok is false for what is not a SIP message (a keepalive CRLF).
func parseMessage(b []byte) (Message, bool) {
	var m Message
	head, body, _ := bytes.Cut(b, []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\r\n")
	if len(lines) == 0 || strings.TrimSpace(lines[0]) == "" {
		return m, false
	}
	first := lines[0]
	if rest, ok := strings.CutPrefix(first, "SIP/2.0 "); ok {
		code, reason, _ := strings.Cut(rest, " ")
		n, err := strconv.Atoi(code)
		if err != nil || n < 100 || n > 699 {
			return m, false
		}
		m.Status, m.Line = n, strings.TrimSpace(code+" "+reason)
	} else {
		method, uri, ok := strings.Cut(first, " ")
		uri = strings.TrimSuffix(uri, " SIP/2.0")
		if !ok || method == "" || strings.TrimSpace(uri) == "" || !strings.HasSuffix(first, " SIP/2.0") {
			return m, false
		}
		m.Method = method
		m.Line = method + " " + uri
	}
	ctype := ""
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "call-id", "i":
			m.CallID = value
		case "cseq":
			m.CSeq = value
			if m.Status != 0 {
				if _, method, ok := strings.Cut(value, " "); ok {
					m.Method = strings.TrimSpace(method)
				}
			}
		case "content-type", "c":
			ctype = strings.ToLower(value)
		}
	}
	if strings.HasPrefix(ctype, "message/sipfrag") {
		frag, _, _ := strings.Cut(string(body), "\r\n")
		m.Frag = strings.TrimSpace(frag)
	}
	return m, true
}

// tracingConn is the phone's SIP socket: every datagram read or written
// goes into the phone's trace.
type tracingConn struct {
	net.PacketConn
	p *Phone
}

func (c *tracingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(b)
	if err == nil && addr != nil {
		c.p.trace(time.Now(), b[:n], false, addr.String())
	}
	return n, addr, err
}

func (c *tracingConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	at := time.Now() // before the answer can arrive
	n, err := c.PacketConn.WriteTo(b, addr)
	if err == nil && addr != nil {
		c.p.trace(at, b[:n], true, addr.String())
	}
	return n, err
}

func (p *Phone) trace(at time.Time, b []byte, out bool, remote string) {
	m, ok := parseMessage(b)
	if !ok {
		return
	}
	m.At, m.Out, m.Remote = at, out, remote
	p.traceMu.Lock()
	p.messages = append(p.messages, m)
	p.traceMu.Unlock()
}

// Trace returns every SIP message the phone sent or received so far, in
// time order (a message sent is stamped just before it left).
func (p *Phone) Trace() []Message {
	p.traceMu.Lock()
	out := append([]Message(nil), p.messages...)
	p.traceMu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// TraceBetween returns the messages of the trace from from up to to.
func (p *Phone) TraceBetween(from, to time.Time) []Message {
	var out []Message
	for _, m := range p.Trace() {
		if !m.At.Before(from) && !m.At.After(to) {
			out = append(out, m)
		}
	}
	return out
}
