package wire

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// wait bounds every blocking step of these tests. It is generous: it only
// turns a hang into a failure and never measures speed.
const wait = 10 * time.Second

// pipe returns the two ends of an in-memory connection, closed at the end of
// the test. Reads on both ends fail after wait instead of hanging.
func pipe(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() {
		_ = a.Close()
		_ = b.Close()
	})
	deadline := time.Now().Add(wait)
	_ = a.SetReadDeadline(deadline)
	_ = b.SetReadDeadline(deadline)
	return a, b
}

// writeAsync writes raw to nc from another goroutine (net.Pipe writes block
// until read) and returns a channel with the write's result.
func writeAsync(nc net.Conn, raw []byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := nc.Write(raw)
		done <- err
	}()
	return done
}

// rawFrames encodes one Ringing frame per sequence number.
func rawFrames(t *testing.T, seqs ...uint64) []byte {
	t.Helper()
	var raw []byte
	for _, s := range seqs {
		p, err := Encode(&Ringing{CallID: fmt.Sprintf("c%d", s)})
		if err != nil {
			t.Fatal(err)
		}
		raw = AppendFrame(raw, Frame{Type: TypeRinging, Seq: s, Payload: p})
	}
	return raw
}

func TestConnSendRecvInOrder(t *testing.T) {
	t.Parallel()
	na, nb := pipe(t)
	a, b := NewConn(na, 0), NewConn(nb, 0)
	if a.NetConn() != na {
		t.Fatal("NetConn does not return the wrapped connection")
	}
	samples := sampleMessages()

	// Both directions at once: each has its own sequence space.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, c := range []*Conn{a, b} {
		wg.Go(func() {
			for _, typ := range allTypes {
				if err := c.Send(samples[typ], wait); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for _, c := range []*Conn{b, a} {
		for _, typ := range allTypes {
			got, err := c.Recv()
			if err != nil {
				t.Fatalf("Recv %s: %v", typ, err)
			}
			if !reflect.DeepEqual(got, samples[typ]) {
				t.Errorf("Recv = %#v, want %#v", got, samples[typ])
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Send: %v", err)
	}
}

func TestConnSendSequenceNumbers(t *testing.T) {
	t.Parallel()
	na, nb := pipe(t)
	a := NewConn(na, 0)
	go func() {
		for range 3 {
			if err := a.Send(&Keepalive{}, wait); err != nil {
				return
			}
		}
	}()
	for want := uint64(1); want <= 3; want++ {
		f, err := ReadFrame(nb, DefaultMaxPayload)
		if err != nil {
			t.Fatalf("ReadFrame: %v", err)
		}
		if f.Seq != want || f.Type != TypeKeepalive || string(f.Payload) != "{}" {
			t.Errorf("frame = %+v, want keepalive seq %d", f, want)
		}
	}
}

func TestConnRecvSequence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		seqs   []uint64
		failAt int // index of the frame that must fail with ErrSequence; -1 = none
	}{
		{"in order", []uint64{1, 2, 3, 4}, -1},
		{"starts at 0", []uint64{0}, 0},
		{"starts at 2", []uint64{2}, 0},
		{"replayed frame", []uint64{1, 2, 2}, 2},
		{"replay of the first frame", []uint64{1, 2, 3, 1}, 3},
		{"skipped frame", []uint64{1, 3}, 1},
		{"reordered frames", []uint64{1, 3, 2}, 1},
		{"injected huge number", []uint64{1, ^uint64(0)}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			na, nb := pipe(t)
			b := NewConn(nb, 0)
			writeAsync(na, rawFrames(t, tt.seqs...))
			for i, s := range tt.seqs {
				m, err := b.Recv()
				if i == tt.failAt {
					if !errors.Is(err, ErrSequence) {
						t.Fatalf("frame %d (seq %d): err = %v, want ErrSequence", i, s, err)
					}
					if m != nil {
						t.Errorf("Recv returned %#v with ErrSequence", m)
					}
					return
				}
				if err != nil {
					t.Fatalf("frame %d (seq %d): %v", i, s, err)
				}
				if want := (&Ringing{CallID: fmt.Sprintf("c%d", s)}); !reflect.DeepEqual(m, want) {
					t.Errorf("frame %d = %#v, want %#v", i, m, want)
				}
			}
		})
	}
}

func TestConnRecvTooLarge(t *testing.T) {
	t.Parallel()
	na, nb := pipe(t)
	b := NewConn(nb, 64)
	// Only the header is written: Recv must refuse the frame from its
	// declared length alone, without waiting for the payload.
	writeAsync(na, header('B', 'T', 1, 0, uint16(TypeRinging), 65, 1))
	if _, err := b.Recv(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Recv = %v, want ErrTooLarge", err)
	}
}

// TestConnSetMaxRecvPayload: a lowered receive limit refuses a larger
// declared frame from its header alone, leaves Send's limit alone, and
// restoring it (n <= 0) accepts full-size frames again.
func TestConnSetMaxRecvPayload(t *testing.T) {
	t.Parallel()
	t.Run("lowered refuses from the header", func(t *testing.T) {
		t.Parallel()
		na, nb := pipe(t)
		b := NewConn(nb, 0)
		b.SetMaxRecvPayload(8 << 10)
		writeAsync(na, header('B', 'T', 1, 0, uint16(TypeLoginRequest), 256<<10, 1))
		_, err := b.Recv()
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "limit is 8192") {
			t.Fatalf("Recv = %v, want ErrTooLarge naming the 8192-byte limit", err)
		}
	})
	t.Run("restored and send untouched", func(t *testing.T) {
		t.Parallel()
		na, nb := pipe(t)
		a, b := NewConn(na, 0), NewConn(nb, 0)
		a.SetMaxRecvPayload(16) // the sender's own receive limit does not bound Send
		b.SetMaxRecvPayload(16)
		b.SetMaxRecvPayload(0)
		want := &Error{Code: CodeInternal, Message: strings.Repeat("x", 200)}
		errc := make(chan error, 1)
		go func() { errc <- a.Send(want, time.Second) }()
		got, err := b.Recv()
		if err != nil {
			t.Fatalf("Recv after restoring the limit: %v", err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("Send: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %#v, want %#v", got, want)
		}
	})
	t.Run("never above the constructor's", func(t *testing.T) {
		t.Parallel()
		na, nb := pipe(t)
		b := NewConn(nb, 64)
		b.SetMaxRecvPayload(1 << 20)
		writeAsync(na, header('B', 'T', 1, 0, uint16(TypeRinging), 65, 1))
		if _, err := b.Recv(); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Recv = %v, want ErrTooLarge", err)
		}
	})
}

func TestConnRecvErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		raw     []byte
		wantErr error
	}{
		{"bad magic", header('B', 'X', 1, 0, uint16(TypeRinging), 0, 1), ErrBadMagic},
		{"other version", header('B', 'T', 2, 0, uint16(TypeRinging), 0, 1), ErrVersion},
		{"reserved flags", header('B', 'T', 1, 1, uint16(TypeRinging), 0, 1), ErrMalformed},
		{"payload not JSON", AppendFrame(nil, Frame{Type: TypeRinging, Seq: 1, Payload: []byte("hello")}), ErrMalformed},
		{"payload fails Validate", AppendFrame(nil, Frame{Type: TypeRinging, Seq: 1, Payload: []byte(`{"call_id":""}`)}), ErrMalformed},
		{"unknown type", AppendFrame(nil, Frame{Type: Type(4242), Seq: 1, Payload: []byte(`{}`)}), ErrUnknownType},
		{"truncated payload", rawFrames(t, 1)[:HeaderSize+3], ErrTruncated},
		{"truncated header", rawFrames(t, 1)[:5], ErrTruncated},
		// The peer closed right after a header that declares a payload.
		{"closed after a header", rawFrames(t, 1)[:HeaderSize], ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			na, nb := pipe(t)
			b := NewConn(nb, 0)
			go func() {
				_, _ = na.Write(tt.raw)
				_ = na.Close() // the stream ends here
			}()
			m, err := b.Recv()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Recv = %v, want %v", err, tt.wantErr)
			}
			if m != nil {
				t.Errorf("Recv returned %#v with an error", m)
			}
		})
	}
}

func TestConnRecvCleanClose(t *testing.T) {
	t.Parallel()
	na, nb := pipe(t)
	b := NewConn(nb, 0)
	go func() {
		_, _ = na.Write(rawFrames(t, 1))
		_ = na.Close()
	}()
	if _, err := b.Recv(); err != nil {
		t.Fatalf("Recv: %v", err)
	}
	if _, err := b.Recv(); err != io.EOF {
		t.Fatalf("Recv after close = %v, want io.EOF", err)
	}
}

// TestConnRecvUnknownTypeKeepsSequence checks that an unknown type consumes
// its sequence number: the receiver may answer with an Error and go on, and
// the next frame is accepted (docs/protocol.md, versioning).
func TestConnRecvUnknownTypeKeepsSequence(t *testing.T) {
	t.Parallel()
	na, nb := pipe(t)
	b := NewConn(nb, 0)
	raw := AppendFrame(nil, Frame{Type: Type(299), Seq: 1, Payload: []byte(`{"x":1}`)})
	raw = append(raw, rawFrames(t, 2)...)
	writeAsync(na, raw)
	if _, err := b.Recv(); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("Recv = %v, want ErrUnknownType", err)
	}
	m, err := b.Recv()
	if err != nil {
		t.Fatalf("Recv after unknown type: %v", err)
	}
	if want := (&Ringing{CallID: "c2"}); !reflect.DeepEqual(m, want) {
		t.Errorf("Recv = %#v, want %#v", m, want)
	}
}

func TestConnRecvErrorMessage(t *testing.T) {
	t.Parallel()
	na, nb := pipe(t)
	a, b := NewConn(na, 0), NewConn(nb, 0)
	go func() { _ = a.SendError(CodeUnknownCall, "no such call", "c-9", wait) }()
	m, err := b.Recv()
	if err != nil {
		t.Fatalf("Recv: %v (an Error message is a message, not a Go error)", err)
	}
	want := &Error{Code: CodeUnknownCall, Message: "no such call", CallID: "c-9"}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("Recv = %#v, want %#v", m, want)
	}
	var re *RemoteError
	if !errors.As(AsError(m), &re) || re.Code != CodeUnknownCall {
		t.Errorf("AsError = %v", AsError(m))
	}
}

// TestConnSendErrorTruncates checks that SendError cuts an over-long text to
// MaxReasonLen and that the peer still accepts it. The cut must fall on a
// UTF-8 boundary: a cut inside a rune leaves an invalid byte that JSON
// encodes as U+FFFD (3 bytes), which pushes the text over the limit at the
// receiver.
func TestConnSendErrorTruncates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		msg  string
	}{
		{"ASCII", strings.Repeat("a", 1000)},
		{"cut inside a 2-byte rune", strings.Repeat("a", MaxReasonLen-1) + "é and more"},
		{"cut inside a 3-byte rune", strings.Repeat("a", MaxReasonLen-1) + "€ and more"},
		{"cut inside a 4-byte rune", strings.Repeat("a", MaxReasonLen-2) + "🎧 and more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			na, nb := pipe(t)
			a, b := NewConn(na, 0), NewConn(nb, 0)
			sent := make(chan error, 1)
			go func() { sent <- a.SendError(CodeInternal, tt.msg, "", wait) }()
			m, err := b.Recv()
			if err != nil {
				t.Fatalf("peer refused the Error that SendError sent: %v", err)
			}
			if err := <-sent; err != nil {
				t.Fatalf("SendError: %v", err)
			}
			e := m.(*Error)
			if len(e.Message) > MaxReasonLen || !utf8.ValidString(e.Message) || !strings.HasPrefix(tt.msg, e.Message) {
				t.Errorf("received message (%d bytes) %q is not a valid prefix within the limit", len(e.Message), e.Message)
			}
			if len(e.Message) < MaxReasonLen-3 {
				t.Errorf("received message is %d bytes: truncated more than needed", len(e.Message))
			}
		})
	}
}

func TestConnSendRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		m       Message
		wantErr error
	}{
		{"over the payload limit", &Invite{CallID: "c1", From: "alice/laptop", To: "bob/phone", Codecs: []string{"PCMU", "PCMA"},
			Media: Media{Addr: "127.0.0.1:4000", SSRC: 1, SRTPKey: srtpKey(1), PtimeMS: 20}}, ErrTooLarge},
		{"invalid message", &Ringing{}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			na, nb := pipe(t)
			a, b := NewConn(na, 128), NewConn(nb, 128)
			if err := a.Send(tt.m, wait); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Send = %v, want %v", err, tt.wantErr)
			}
			// Nothing went on the wire and no sequence number was used: the
			// next message arrives as frame 1.
			go func() { _ = a.Send(&Ringing{CallID: "next"}, wait) }()
			m, err := b.Recv()
			if err != nil {
				t.Fatalf("Recv after refused Send: %v", err)
			}
			if want := (&Ringing{CallID: "next"}); !reflect.DeepEqual(m, want) {
				t.Errorf("Recv = %#v, want %#v", m, want)
			}
		})
	}
}

func TestConnSendTimeout(t *testing.T) {
	t.Parallel()
	na, _ := pipe(t) // nobody reads the other end
	a := NewConn(na, 0)
	done := make(chan error, 1)
	go func() { done <- a.Send(&Keepalive{}, 20*time.Millisecond) }()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Send = %v, want a deadline error", err)
		}
	case <-time.After(wait):
		t.Fatal("Send with a timeout blocked on a peer that does not read")
	}
}

// TestConnConcurrentSend sends from several goroutines at once: the receiver
// must get every frame, numbered 1..N without gap or repeat, and each
// sender's messages in that sender's order.
func TestConnConcurrentSend(t *testing.T) {
	t.Parallel()
	const senders, each = 8, 50
	na, nb := pipe(t)
	a := NewConn(na, 0)
	var wg sync.WaitGroup
	errs := make(chan error, senders) // not t.Errorf: a sender may outlive a failed test
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				if err := a.Send(&Ringing{CallID: fmt.Sprintf("g%d-%d", g, i)}, wait); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	next := make([]int, senders)
	for n := uint64(1); n <= senders*each; n++ {
		f, err := ReadFrame(nb, DefaultMaxPayload)
		if err != nil {
			t.Fatalf("frame %d: %v", n, err)
		}
		if f.Seq != n {
			t.Fatalf("frame %d has seq %d", n, f.Seq)
		}
		m, err := Decode(f)
		if err != nil {
			t.Fatalf("frame %d: %v", n, err)
		}
		var g, i int
		if _, err := fmt.Sscanf(m.(*Ringing).CallID, "g%d-%d", &g, &i); err != nil {
			t.Fatalf("frame %d: call id %q: %v", n, m.(*Ringing).CallID, err)
		}
		if i != next[g] {
			t.Errorf("sender %d: got message %d, want %d", g, i, next[g])
		}
		next[g] = i + 1
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Send: %v", err)
	}
}

func BenchmarkConnSendRecv(b *testing.B) {
	na, nb := net.Pipe()
	defer na.Close()
	defer nb.Close()
	a, r := NewConn(na, 0), NewConn(nb, 0)
	m := sampleMessages()[TypeInvite]
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := r.Recv(); err != nil {
				return
			}
		}
	}()
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Send(m, 0); err != nil {
			b.Fatal(err)
		}
	}
	_ = na.Close()
	<-done
}
