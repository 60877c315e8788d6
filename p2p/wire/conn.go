package wire

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// keepWriteBuffer is the largest frame buffer returned to framePool: one
// big message (a login profile) is not kept for later sends.
const keepWriteBuffer = 2 << 10

// framePool holds frame buffers shared by every Conn: an idle connection
// keeps none (a server holds thousands of them open, docs/benchmarks.md §8).
var framePool = sync.Pool{New: func() any { return new([]byte) }}

// Conn carries messages over one TLS connection. Send is safe for concurrent
// use; Recv must be called from one goroutine (the connection's reader).
type Conn struct {
	nc         net.Conn
	maxPayload int
	maxRecv    int // the receive limit: maxPayload unless SetMaxRecvPayload lowered it

	wmu     sync.Mutex
	sendSeq uint64

	recvSeq uint64
}

// NewConn wraps nc. maxPayload <= 0 means DefaultMaxPayload.
func NewConn(nc net.Conn, maxPayload int) *Conn {
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	return &Conn{nc: nc, maxPayload: maxPayload, maxRecv: maxPayload}
}

// SetMaxRecvPayload sets the largest payload Recv accepts (n <= 0 restores
// the limit the Conn was made with); Send keeps its own limit. A server
// uses it to hold a peer that has not authenticated yet to a small first
// frame: a larger declared length is refused (ErrTooLarge) before any of
// the payload is allocated. Call it from the reader goroutine, between
// Recv calls.
func (c *Conn) SetMaxRecvPayload(n int) {
	if n <= 0 || n > c.maxPayload {
		n = c.maxPayload
	}
	c.maxRecv = n
}

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Send encodes m and writes it as the next frame. A write that has not
// completed within timeout (0 = no limit) fails, so a stuck peer cannot
// block the sender forever.
func (c *Conn) Send(m Message, timeout time.Duration) error {
	p, err := Encode(m)
	if err != nil {
		return err
	}
	if len(p) > c.maxPayload {
		return fmt.Errorf("%w: %s is %d bytes, limit is %d", ErrTooLarge, m.Type(), len(p), c.maxPayload)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.sendSeq++
	bp := framePool.Get().(*[]byte)
	buf := AppendFrame((*bp)[:0], Frame{Type: m.Type(), Seq: c.sendSeq, Payload: p})
	if timeout > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(timeout))
		defer func() { _ = c.nc.SetWriteDeadline(time.Time{}) }()
	}
	_, err = c.nc.Write(buf)
	if cap(buf) <= keepWriteBuffer {
		*bp = buf
		framePool.Put(bp)
	}
	if err != nil {
		return fmt.Errorf("wire: send %s: %w", m.Type(), err)
	}
	return nil
}

// Recv reads, checks and decodes the next message. Frames must arrive with
// sequence numbers 1, 2, 3...; anything else is ErrSequence and the
// connection should be closed. A received Error message is returned as the
// message (not as a Go error) so callers can match it to a request.
func (c *Conn) Recv() (Message, error) {
	f, err := ReadFrame(c.nc, c.maxRecv)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, err
	}
	if f.Seq != c.recvSeq+1 {
		return nil, fmt.Errorf("%w: got %d, want %d", ErrSequence, f.Seq, c.recvSeq+1)
	}
	c.recvSeq = f.Seq
	return Decode(f)
}

// SetReadDeadline sets the deadline for Recv.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// Close closes the underlying connection.
func (c *Conn) Close() error { return c.nc.Close() }

// SendError is a convenience for replying with an Error message.
func (c *Conn) SendError(code ErrorCode, msg, callID string, timeout time.Duration) error {
	return c.Send(&Error{Code: code, Message: TrimReason(msg), CallID: callID}, timeout)
}

// TrimReason makes s fit a reason or error message field: valid UTF-8, at
// most MaxReasonLen bytes, cut at a character boundary so the receiver's
// limit holds.
func TrimReason(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) > MaxReasonLen {
		n := MaxReasonLen
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	return s
}

// AsError converts a received *Error message to a *RemoteError.
func AsError(m Message) error {
	if e, ok := m.(*Error); ok {
		return &RemoteError{Code: e.Code, Message: e.Message}
	}
	return nil
}
