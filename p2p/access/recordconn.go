package access

import "net"

// recordConn is what the server's TLS layer reads an accepted connection
// through. It changes nothing TLS computes, only how the bytes arrive:
//
//   - Each read returns bytes of one TLS record at most, so crypto/tls never
//     reads ahead: its input buffer then holds one record, not whatever the
//     socket had.
//   - A plaintext handshake record (content type 22, in TLS 1.3 only the
//     ClientHello) longer than maxFragment is split into several records.
//     RFC 8446 §5.1 allows a handshake message to be fragmented across
//     records at any point, and the transcript hash covers the messages,
//     not the records, so the handshake is the same.
//
// Why: crypto/tls keeps its input buffer and its handshake buffer, grown to
// the largest record and message, for the life of the connection. A
// ClientHello with a post-quantum key share (X25519MLKEM768, about 1.5 KB)
// left 2 KB of input buffer on every connection. With records of at most
// 512 bytes it stays at 1,152 bytes. The fragment sizes (a quarter of the
// record, the same again, then doubling up to maxFragment) grow the
// handshake buffer by doubling to about the message's size, as one record
// would (docs/benchmarks.md §8). Encrypted records pass unchanged.
type recordConn struct {
	net.Conn
	hdr   [recordHeaderLen]byte
	nhdr  int // bytes of the current record's header read from the connection
	out   int // bytes of hdr handed to TLS; recordHeaderLen once all are
	total int // the current record's length, as the peer sent it
	body  int // bytes of its body not read yet
	frag  int // bytes left in the fragment being handed to TLS
	first int // first fragment's size; 0: the record is not split
}

const (
	recordHeaderLen     = 5
	recordTypeHandshake = 22
	// maxFragment bounds the records a plaintext handshake record is split
	// into: 5 + 512 + bytes.MinRead (512) fits crypto/tls's 1,152-byte
	// size class.
	maxFragment = 512
)

func newRecordConn(nc net.Conn) *recordConn { return &recordConn{Conn: nc, out: recordHeaderLen} }

func (r *recordConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		if r.out < recordHeaderLen {
			n := copy(b, r.hdr[r.out:])
			r.out += n
			return n, nil
		}
		if r.frag > 0 {
			n, err := r.Conn.Read(b[:min(len(b), r.frag)])
			r.frag -= n
			r.body -= n
			return n, err
		}
		if r.body > 0 {
			r.nextFragment()
			continue
		}
		// At a record boundary: read the next header whole (it may come
		// in pieces), then hand it on, rewritten if the record is split.
		for r.nhdr < recordHeaderLen {
			n, err := r.Conn.Read(r.hdr[r.nhdr:])
			r.nhdr += n
			if err != nil && r.nhdr < recordHeaderLen {
				return 0, err
			}
		}
		r.nhdr = 0
		r.total = int(r.hdr[3])<<8 | int(r.hdr[4])
		r.body = r.total
		r.first = 0
		if r.hdr[0] == recordTypeHandshake && r.total > maxFragment {
			r.first = min((r.total+3)/4, maxFragment)
		}
		r.nextFragment()
	}
}

// nextFragment starts handing on the next piece of the current record's
// body, behind its own header: the whole body, or, for a split record, the
// first fragment's size, the same again, then as much as sent so far.
func (r *recordConn) nextFragment() {
	size := r.body
	if r.first > 0 {
		size = min(max(r.first, r.total-r.body), maxFragment, r.body)
	}
	r.frag = size
	r.hdr[3], r.hdr[4] = byte(size>>8), byte(size)
	r.out = 0
}
