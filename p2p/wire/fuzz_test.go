package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"reflect"
	"testing"
	"time"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/ in the "go test fuzz v1"
// format; plain `go test` runs every seed as a regular test case.

// sentinels are the only errors the decoder side may return (besides io.EOF
// at a clean frame boundary).
var sentinels = []error{ErrBadMagic, ErrVersion, ErrTooLarge, ErrTruncated, ErrSequence, ErrUnknownType, ErrMalformed}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// FuzzReadFrame: arbitrary bytes never panic; an error is a sentinel, or
// io.EOF only for an empty stream; a parsed frame re-encodes to exactly the
// bytes it was read from.
func FuzzReadFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxPayload = 4096
		r := bytes.NewReader(data)
		fr, err := ReadFrame(r, maxPayload)
		if err != nil {
			if errors.Is(err, io.EOF) {
				if len(data) != 0 {
					t.Fatalf("ReadFrame(%d bytes) = %v: io.EOF is only for a stream that ends at a frame boundary", len(data), err)
				}
				return
			}
			if !isSentinel(err) {
				t.Fatalf("ReadFrame error %v is not a wire sentinel", err)
			}
			return
		}
		if len(fr.Payload) > maxPayload {
			t.Fatalf("payload %d bytes over the %d limit", len(fr.Payload), maxPayload)
		}
		consumed := data[:len(data)-r.Len()]
		if got := AppendFrame(nil, fr); !bytes.Equal(got, consumed) {
			t.Fatalf("AppendFrame(ReadFrame(x)) != x\n got % x\nwant % x", got, consumed)
		}
	})
}

// FuzzDecode: an arbitrary type and payload never panic; an error is
// ErrUnknownType or ErrMalformed; a decoded message re-encodes, and decoding
// that again yields an equal message (the round-trip invariant).
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, typ uint16, payload []byte) {
		m, err := Decode(Frame{Type: Type(typ), Seq: 1, Payload: payload})
		if err != nil {
			if New(Type(typ)) == nil && !errors.Is(err, ErrUnknownType) {
				t.Fatalf("unknown type %d: err = %v, want ErrUnknownType", typ, err)
			}
			if New(Type(typ)) != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("type %s: err = %v, want ErrMalformed", Type(typ), err)
			}
			if m != nil {
				t.Fatalf("Decode returned %#v with an error", m)
			}
			return
		}
		if m.Type() != Type(typ) {
			t.Fatalf("Decode of type %d returned a %s", typ, m.Type())
		}
		p, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode of a decoded %s: %v", m.Type(), err)
		}
		m2, err := Decode(Frame{Type: Type(typ), Seq: 1, Payload: p})
		if err != nil {
			t.Fatalf("Decode(Encode(m)) of %s: %v\npayload %s", m.Type(), err, p)
		}
		if !reflect.DeepEqual(emptyToNil(m), emptyToNil(m2)) {
			t.Fatalf("round trip changed the message:\nfirst  %#v\nsecond %#v\nfrom %q via %s", m, m2, payload, p)
		}
		// Encoding is a fixed point after one decode.
		p2, err := Encode(m2)
		if err != nil || !bytes.Equal(p, p2) {
			t.Fatalf("Encode not stable: %s vs %s (%v)", p, p2, err)
		}
	})
}

// emptyToNil returns a copy of m with every empty slice replaced by nil.
//
// Buddy.Devices is `omitempty`, so a received `"devices":[]` decodes to an
// empty slice, is omitted when re-encoded, and decodes the second time as
// nil. Both mean "no devices"; the round-trip invariant compares meaning,
// so the fuzz target treats empty and nil slices alike.
func emptyToNil(m Message) Message {
	v := reflect.New(reflect.TypeOf(m).Elem())
	v.Elem().Set(reflect.ValueOf(m).Elem())
	normalize(v.Elem())
	return v.Interface().(Message)
}

func normalize(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			normalize(v.Field(i))
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(c, v)
		for i := range c.Len() {
			normalize(c.Index(i))
		}
		v.Set(c)
	}
}

// readerConn is a net.Conn whose read side is a fixed byte stream and whose
// writes are discarded: it feeds fuzz input to Conn.Recv without sockets.
type readerConn struct{ r *bytes.Reader }

func (c readerConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c readerConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c readerConn) Close() error                     { return nil }
func (c readerConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c readerConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }
func (c readerConn) SetDeadline(time.Time) error      { return nil }
func (c readerConn) SetReadDeadline(time.Time) error  { return nil }
func (c readerConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzConnRecv: a byte stream read by Conn.Recv never panics; every error is
// a wire sentinel or io.EOF, and io.EOF only when the stream ended exactly
// at a frame boundary; every message returned is valid.
func FuzzConnRecv(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		c := NewConn(readerConn{r}, 1024)
		// Each Recv consumes at least one byte or ends the stream, so this
		// bound is never reached; it only guards against a loop bug.
		for range len(data) + 2 {
			before := r.Len()
			m, err := c.Recv()
			if err == nil {
				if m == nil {
					t.Fatal("Recv returned neither a message nor an error")
				}
				if err := m.Validate(); err != nil {
					t.Fatalf("Recv returned an invalid %s: %v", m.Type(), err)
				}
				continue
			}
			if m != nil {
				t.Fatalf("Recv returned %#v with error %v", m, err)
			}
			if err == io.EOF {
				if before != 0 {
					t.Fatalf("Recv = io.EOF with %d bytes of an unfinished frame left: a truncated frame looks like a clean close", before)
				}
				return
			}
			if !isSentinel(err) {
				t.Fatalf("Recv error %v is not a wire sentinel", err)
			}
			if r.Len() == 0 && before == 0 {
				t.Fatalf("Recv on an exhausted stream = %v, want io.EOF", err)
			}
		}
		t.Fatal("Recv did not reach the end of the stream")
	})
}
