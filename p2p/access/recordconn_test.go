package access

import (
	"bytes"
	"io"
	"net"
	"slices"
	"testing"
)

// chunkConn is a net.Conn reading from a fixed stream, at most chunk bytes
// per Read, recording how many bytes each Read asked for.
type chunkConn struct {
	net.Conn
	r     *bytes.Reader
	chunk int
	reads [][2]int // offset in the stream and bytes asked, per Read
}

func (c *chunkConn) Read(b []byte) (int, error) {
	c.reads = append(c.reads, [2]int{int(c.r.Size()) - c.r.Len(), len(b)})
	return c.r.Read(b[:min(len(b), c.chunk)])
}

func record(typ byte, body []byte) []byte {
	return append([]byte{typ, 3, 1, byte(len(body) >> 8), byte(len(body))}, body...)
}

// parseRecords splits a stream into records: type and body each.
func parseRecords(t *testing.T, b []byte) (types []byte, bodies [][]byte) {
	t.Helper()
	for len(b) > 0 {
		if len(b) < recordHeaderLen {
			t.Fatalf("%d bytes left, not a record header", len(b))
		}
		n := int(b[3])<<8 | int(b[4])
		if len(b) < recordHeaderLen+n {
			t.Fatalf("record of %d bytes, %d left", n, len(b)-recordHeaderLen)
		}
		types = append(types, b[0])
		bodies = append(bodies, b[recordHeaderLen:recordHeaderLen+n])
		b = b[recordHeaderLen+n:]
	}
	return types, bodies
}

// TestRecordConn: what TLS reads through recordConn is the same records,
// with a long plaintext handshake record split into fragments of at most
// maxFragment bytes (sizes a quarter, a quarter, then doubling) and every
// other record unchanged; no Read of the connection asks past the end of
// the record it is in (crypto/tls never reads ahead), whatever pieces the
// bytes arrive in.
func TestRecordConn(t *testing.T) {
	t.Parallel()
	body := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		return b
	}
	hello := body(1500)
	big := body(3000)
	appData := body(1500)
	stream := slices.Concat(record(22, hello), record(20, []byte{1}), record(23, appData), record(22, body(100)), record(23, nil), record(22, big))
	for _, tc := range []struct {
		name  string
		chunk int // bytes per socket read
		buf   int // bytes per TLS read
	}{
		{"whole", 1 << 16, 1 << 16},
		{"byte by byte", 1, 1 << 16},
		{"small reads", 1 << 16, 3},
		{"odd pieces", 7, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cc := &chunkConn{r: bytes.NewReader(stream), chunk: tc.chunk}
			rc := newRecordConn(cc)
			var out []byte
			buf := make([]byte, tc.buf)
			for {
				n, err := rc.Read(buf)
				out = append(out, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			types, bodies := parseRecords(t, out)
			var sizes []int
			joined := map[byte][]byte{}
			for i, b := range bodies {
				sizes = append(sizes, len(b))
				joined[types[i]] = append(joined[types[i]], b...)
			}
			want := []int{375, 375, 512, 238, 1, 1500, 100, 0, 512, 512, 512, 512, 512, 440}
			if !slices.Equal(sizes, want) {
				t.Errorf("record sizes %v, want %v", sizes, want)
			}
			if !bytes.Equal(joined[22], slices.Concat(hello, body(100), big)) || !bytes.Equal(joined[23], appData) || !bytes.Equal(joined[20], []byte{1}) {
				t.Error("record bodies changed")
			}
			// No read of the connection may ask past the current record.
			var ends []int
			for off := 0; off < len(stream); {
				n := int(stream[off+3])<<8 | int(stream[off+4])
				ends = append(ends, off+recordHeaderLen, off+recordHeaderLen+n)
				off += recordHeaderLen + n
			}
			for _, rd := range cc.reads {
				i, _ := slices.BinarySearch(ends, rd[0]+1)
				if i < len(ends) && rd[0]+rd[1] > ends[i] {
					t.Fatalf("a read at %d asked for %d bytes, past the boundary at %d", rd[0], rd[1], ends[i])
				}
			}
		})
	}
}
