package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"
)

// header builds a raw frame header field by field, so tests can break any
// one field.
func header(magic0, magic1, version, flags byte, typ uint16, length uint32, seq uint64) []byte {
	h := make([]byte, HeaderSize)
	h[0], h[1], h[2], h[3] = magic0, magic1, version, flags
	binary.BigEndian.PutUint16(h[4:6], typ)
	binary.BigEndian.PutUint32(h[6:10], length)
	binary.BigEndian.PutUint64(h[10:18], seq)
	return h
}

func TestAppendFrameLayout(t *testing.T) {
	t.Parallel()
	got := AppendFrame([]byte("prefix"), Frame{Type: TypeInvite, Seq: 0x0102030405060708, Payload: []byte(`{"a":1}`)})
	want := append([]byte("prefix"),
		'B', 'T', // magic
		1,      // version
		0,      // flags
		0, 200, // type 200 (invite), big endian
		0, 0, 0, 7, // payload length
		1, 2, 3, 4, 5, 6, 7, 8, // sequence number
	)
	want = append(want, `{"a":1}`...)
	if !bytes.Equal(got, want) {
		t.Errorf("AppendFrame =\n% x\nwant\n% x", got, want)
	}
}

func TestFrameRoundTripEveryType(t *testing.T) {
	t.Parallel()
	for typ, m := range sampleMessages() {
		t.Run(typ.String(), func(t *testing.T) {
			t.Parallel()
			p, err := Encode(m)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			in := Frame{Type: typ, Seq: 42, Payload: p}
			raw := AppendFrame(nil, in)
			if len(raw) != HeaderSize+len(p) {
				t.Fatalf("frame is %d bytes, want %d", len(raw), HeaderSize+len(p))
			}
			r := bytes.NewReader(raw)
			f, err := ReadFrame(r, DefaultMaxPayload)
			if err != nil {
				t.Fatalf("ReadFrame: %v", err)
			}
			if r.Len() != 0 {
				t.Errorf("%d bytes left unread", r.Len())
			}
			if !reflect.DeepEqual(f, in) {
				t.Errorf("ReadFrame = %+v, want %+v", f, in)
			}
			got, err := Decode(f)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Errorf("Decode = %#v, want %#v", got, m)
			}
			// A clean end of stream after a whole frame is io.EOF.
			if _, err := ReadFrame(r, DefaultMaxPayload); err != io.EOF {
				t.Errorf("ReadFrame at end = %v, want io.EOF", err)
			}
		})
	}
}

func TestReadFrameSeveral(t *testing.T) {
	t.Parallel()
	frames := []Frame{
		{Type: TypeKeepalive, Seq: 1, Payload: []byte(`{}`)},
		{Type: TypeRinging, Seq: 2, Payload: []byte(`{"call_id":"c1"}`)},
		{Type: Type(999), Seq: 3, Payload: []byte{}}, // ReadFrame does not judge the type
	}
	var raw []byte
	for _, f := range frames {
		raw = AppendFrame(raw, f)
	}
	r := bytes.NewReader(raw)
	for i, want := range frames {
		got, err := ReadFrame(r, 64)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.Type != want.Type || got.Seq != want.Seq || !bytes.Equal(got.Payload, want.Payload) {
			t.Errorf("frame %d = %+v, want %+v", i, got, want)
		}
	}
}

func TestParseHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		h       []byte
		max     int
		wantErr error
		typ     Type
		length  int
		seq     uint64
	}{
		{"ok", header('B', 'T', 1, 0, 105, 12, 9), 100, nil, TypePresence, 12, 9},
		{"ok at the limit", header('B', 'T', 1, 0, 1, 100, 1), 100, nil, TypeError, 100, 1},
		{"ok empty payload", header('B', 'T', 1, 0, 102, 0, 1), 100, nil, TypeKeepalive, 0, 1},
		{"ok unknown type is not a header error", header('B', 'T', 1, 0, 0xffff, 0, 1), 100, nil, Type(0xffff), 0, 1},
		{"ok max sequence", header('B', 'T', 1, 0, 1, 0, ^uint64(0)), 100, nil, TypeError, 0, ^uint64(0)},
		{"ok longer slice", append(header('B', 'T', 1, 0, 1, 3, 2), "xyz"...), 100, nil, TypeError, 3, 2},
		{"bad magic first byte", header('b', 'T', 1, 0, 1, 0, 1), 100, ErrBadMagic, 0, 0, 0},
		{"bad magic second byte", header('B', 't', 1, 0, 1, 0, 1), 100, ErrBadMagic, 0, 0, 0},
		{"TLS record instead of a frame", []byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03........"), 100, ErrBadMagic, 0, 0, 0},
		{"HTTP instead of a frame", []byte("GET / HTTP/1.1\r\nHo"), 100, ErrBadMagic, 0, 0, 0},
		{"version 0", header('B', 'T', 0, 0, 1, 0, 1), 100, ErrVersion, 0, 0, 0},
		{"version 2", header('B', 'T', 2, 0, 1, 0, 1), 100, ErrVersion, 0, 0, 0},
		{"version 255", header('B', 'T', 255, 0, 1, 0, 1), 100, ErrVersion, 0, 0, 0},
		{"reserved flag 0x01", header('B', 'T', 1, 0x01, 1, 0, 1), 100, ErrMalformed, 0, 0, 0},
		{"reserved flag 0x80", header('B', 'T', 1, 0x80, 1, 0, 1), 100, ErrMalformed, 0, 0, 0},
		{"length one over the limit", header('B', 'T', 1, 0, 1, 101, 1), 100, ErrTooLarge, 0, 0, 0},
		{"length 4 GiB", header('B', 'T', 1, 0, 1, 0xffffffff, 1), DefaultMaxPayload, ErrTooLarge, 0, 0, 0},
		{"empty header", nil, 100, ErrTruncated, 0, 0, 0},
		{"17-byte header", header('B', 'T', 1, 0, 1, 0, 1)[:HeaderSize-1], 100, ErrTruncated, 0, 0, 0},
		{"2-byte header", []byte("BT"), 100, ErrTruncated, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			typ, length, seq, err := ParseHeader(tt.h, tt.max)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseHeader error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHeader: %v", err)
			}
			if typ != tt.typ || length != tt.length || seq != tt.seq {
				t.Errorf("ParseHeader = (%d, %d, %d), want (%d, %d, %d)", typ, length, seq, tt.typ, tt.length, tt.seq)
			}
		})
	}
}

// TestParseHeaderVersionErrorIsClear checks that a peer on another protocol
// version gets an error that says which versions are involved, not just
// "malformed" (docs/protocol.md, versioning).
func TestParseHeaderVersionErrorIsClear(t *testing.T) {
	t.Parallel()
	_, _, _, err := ParseHeader(header('B', 'T', 2, 0, 1, 0, 1), 100)
	if !errors.Is(err, ErrVersion) {
		t.Fatalf("err = %v, want ErrVersion", err)
	}
	if got, want := err.Error(), "wire: unsupported protocol version: peer speaks version 2, this build speaks 1"; got != want {
		t.Errorf("error text = %q, want %q", got, want)
	}
}

// countingReader fails the test if anything beyond limit bytes is read: it
// proves a frame is rejected before its payload is read (or allocated).
type countingReader struct {
	t     *testing.T
	r     io.Reader
	limit int
	n     int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	if c.n > c.limit {
		c.t.Errorf("read %d bytes, only the %d-byte header may be read", c.n, c.limit)
	}
	return n, err
}

func TestReadFrameRejectsBeforeReadingPayload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		h       []byte
		wantErr error
	}{
		{"too large", header('B', 'T', 1, 0, 200, 1<<20, 1), ErrTooLarge},
		{"bad magic", header('X', 'T', 1, 0, 200, 10, 1), ErrBadMagic},
		{"wrong version", header('B', 'T', 9, 0, 200, 10, 1), ErrVersion},
		{"reserved flags", header('B', 'T', 1, 4, 200, 10, 1), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// The "payload" that follows is plentiful; none of it may be read.
			r := &countingReader{t: t, r: io.MultiReader(bytes.NewReader(tt.h), bytes.NewReader(make([]byte, 1<<20))), limit: HeaderSize}
			_, err := ReadFrame(r, 1024)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReadFrame error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestReadFrameTruncated(t *testing.T) {
	t.Parallel()
	full := AppendFrame(nil, Frame{Type: TypeRinging, Seq: 1, Payload: []byte(`{"call_id":"c1"}`)})
	tests := []struct {
		name string
		raw  []byte
	}{
		{"one header byte", full[:1]},
		{"header minus one", full[:HeaderSize-1]},
		{"payload minus one", full[:len(full)-1]},
		{"one payload byte", full[:HeaderSize+1]},
		// Nothing after a whole header that declares a payload: the stream
		// ended inside a frame, which is not a clean close.
		{"header only", full[:HeaderSize]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ReadFrame(bytes.NewReader(tt.raw), DefaultMaxPayload)
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("ReadFrame error = %v, want ErrTruncated", err)
			}
			// Callers (Conn.Recv among them) treat io.EOF as a clean close
			// at a frame boundary; a truncated frame must not look like one.
			if errors.Is(err, io.EOF) {
				t.Errorf("ReadFrame error %q matches io.EOF: a truncated frame looks like a clean close", err)
			}
		})
	}
}

func TestReadFrameCleanEOF(t *testing.T) {
	t.Parallel()
	if _, err := ReadFrame(bytes.NewReader(nil), DefaultMaxPayload); err != io.EOF {
		t.Errorf("ReadFrame(empty) = %v, want io.EOF", err)
	}
}

func TestReadFrameReaderError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	_, err := ReadFrame(io.MultiReader(bytes.NewReader([]byte("BT")), &errReader{boom}), DefaultMaxPayload)
	if !errors.Is(err, boom) {
		t.Errorf("ReadFrame = %v, want the reader's error", err)
	}
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

func BenchmarkAppendFrame(b *testing.B) {
	p, err := Encode(sampleMessages()[TypeInvite])
	if err != nil {
		b.Fatal(err)
	}
	f := Frame{Type: TypeInvite, Seq: 1, Payload: p}
	buf := make([]byte, 0, HeaderSize+len(p))
	b.ReportAllocs()
	b.SetBytes(int64(HeaderSize + len(p)))
	for b.Loop() {
		buf = AppendFrame(buf[:0], f)
	}
}

func BenchmarkReadFrame(b *testing.B) {
	p, err := Encode(sampleMessages()[TypeInvite])
	if err != nil {
		b.Fatal(err)
	}
	raw := AppendFrame(nil, Frame{Type: TypeInvite, Seq: 1, Payload: p})
	r := bytes.NewReader(raw)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		r.Reset(raw)
		if _, err := ReadFrame(r, DefaultMaxPayload); err != nil {
			b.Fatal(err)
		}
	}
}
