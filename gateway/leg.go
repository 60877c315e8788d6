package gateway

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/baton-voice/baton/codecs"
)

// leg is the SIP side of one bridged call: a plain-RTP socket toward the
// phone or trunk. Toward the P2P endpoint it is the call's audio.Source
// (what the phone said, decoded) and audio.Sink (what the phone hears,
// encoded and sent), so the endpoint's own media engine paces both ways.
//
// Symmetric RTP (RFC 4961): the leg sends to the address the SDP named
// until the first packet from the phone arrives, then latches onto that
// packet's source (a phone behind NAT) and drops, counting, packets from
// anywhere else. A re-INVITE that moves the phone's media to a new
// address unlatches the leg; the address it moved from may not latch again
// (its stragglers must not take the call back).
//
// The leg sends only while the phone wants to receive (RFC 3264 §6.1,
// §8.4): while it has the call on hold (sendonly or inactive) the gateway
// answers recvonly or inactive and sends it nothing.
type leg struct {
	conn *net.UDPConn

	mu      sync.Mutex
	codec   codecs.Codec
	pt      uint8
	dtmfPT  int            // RFC 4733 payload type of the phone, -1 when none
	remote  netip.AddrPort // where we send: the SDP's address, then the latched source
	sdpAddr netip.AddrPort // the address the last SDP named
	left    netip.AddrPort // the latched address a re-INVITE moved away from
	latched bool
	sending bool         // the phone receives (its SDP is sendrecv or recvonly)
	hosts   []netip.Addr // where the phone's RTP may come from before latching
	fifo    []int16      // decoded samples from the phone, oldest first
	primed  bool         // playout started (a short prebuffer absorbs jitter)
	// relayIn and relayOut, once set (a transfer, refer.go), replace the
	// phone: ReadFrame plays relayIn, WriteFrame feeds relayOut.
	relayIn, relayOut *pipe
	closed            bool

	// sending state, owned by WriteFrame (one caller: the media engine)
	pkt rtp.Packet
	out []byte
	enc []byte

	lastRecv atomic.Int64 // unix nanos of the last accepted packet

	stats legStats
	dtmf  legDTMF // RFC 4733 both ways (dtmf.go)
	done  chan struct{}
}

// legStats are the SIP leg's packet counters.
type legStats struct {
	Received, Sent, WrongSource, Malformed, WrongPT, Events, Overflow atomic.Uint64
}

// legPrebuffer is how much audio from the phone is held before playout
// starts: enough for the jitter of a LAN phone, small enough to be unheard.
const legPrebuffer = 40 * time.Millisecond

// legMaxBuffer bounds the samples held; past it the oldest are dropped (a
// phone sending faster than real time cannot grow memory).
const legMaxBuffer = 200 * time.Millisecond

func openLeg(ip netip.Addr) (*leg, error) {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		return nil, fmt.Errorf("gateway: open RTP port on %s: %w", ip, err)
	}
	l := &leg{conn: conn, dtmfPT: -1, done: make(chan struct{}), out: make([]byte, 1500), enc: make([]byte, 1200)}
	var b [8]byte
	_, _ = rand.Read(b[:])
	l.pkt.Header = rtp.Header{Version: 2, SSRC: binary.BigEndian.Uint32(b[:4]), SequenceNumber: binary.BigEndian.Uint16(b[4:6]), Timestamp: binary.BigEndian.Uint32(b[4:8])}
	l.lastRecv.Store(time.Now().UnixNano())
	go l.readLoop()
	return l, nil
}

// LocalAddr is the leg's RTP address, for the SDP.
func (l *leg) LocalAddr() netip.AddrPort { return l.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// setRemote sets the codec, payload types and the address the SDP named;
// signal is the address the phone's SIP came from; sending says whether
// the phone receives media from us. A later SDP (re-INVITE) that names a
// new address moves the leg there and unlatches it; one that names the
// same address (hold, resume) keeps the latch, so a phone behind NAT keeps
// its translated address.
func (l *leg) setRemote(codec codecs.Codec, pt uint8, dtmfPT int, remote netip.AddrPort, signal netip.Addr, sending bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sdpAddr != remote || !l.latched {
		if l.latched && l.remote != remote {
			l.left = l.remote
		}
		if remote == l.left {
			l.left = netip.AddrPort{}
		}
		l.latched = false
		l.remote = remote
	}
	l.sdpAddr = remote
	l.codec, l.pt, l.dtmfPT, l.sending = codec, pt, dtmfPT, sending
	l.hosts = l.hosts[:0]
	if remote.IsValid() {
		l.hosts = append(l.hosts, remote.Addr().Unmap())
	}
	if signal.IsValid() {
		l.hosts = append(l.hosts, signal.Unmap())
	}
}

func (l *leg) mayLatch(ip netip.Addr) bool {
	for _, h := range l.hosts {
		if h == ip {
			return true
		}
	}
	return false
}

// silentFor is how long the phone has sent nothing.
func (l *leg) silentFor(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, l.lastRecv.Load()))
}

func (l *leg) readLoop() {
	defer close(l.done)
	buf := make([]byte, 1500)
	pcm := make([]int16, 1200)
	var pkt rtp.Packet
	for {
		n, from, err := l.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			l.stats.Malformed.Add(1)
			continue
		}
		l.mu.Lock()
		if l.codec == nil {
			l.mu.Unlock()
			continue
		}
		switch {
		case !l.latched && (!l.mayLatch(from.Addr()) || from == l.left):
			// Latch only onto the host the SDP named or the one the
			// phone signals from (a phone behind NAT): the first packet
			// from a stranger must not take the call's audio, nor one
			// from the address the phone has just moved away from.
			l.mu.Unlock()
			l.stats.WrongSource.Add(1)
			continue
		case !l.latched:
			l.remote, l.latched = from, true
		case from != l.remote:
			l.mu.Unlock()
			l.stats.WrongSource.Add(1)
			continue
		}
		if int(pkt.PayloadType) == l.dtmfPT {
			l.mu.Unlock()
			l.stats.Events.Add(1)
			l.lastRecv.Store(time.Now().UnixNano())
			l.dtmfReceived(&pkt) // dtmf.go
			continue
		}
		if pkt.PayloadType != l.pt {
			l.mu.Unlock()
			l.stats.WrongPT.Add(1)
			continue
		}
		k, err := l.codec.Decode(pcm, pkt.Payload)
		if err != nil {
			l.mu.Unlock()
			l.stats.Malformed.Add(1)
			continue
		}
		max := int(int64(l.codec.Descriptor().SampleRate) * int64(legMaxBuffer) / int64(time.Second))
		l.fifo = append(l.fifo, pcm[:k]...)
		if over := len(l.fifo) - max; over > 0 {
			l.fifo = append(l.fifo[:0], l.fifo[over:]...)
			l.stats.Overflow.Add(uint64(over))
		}
		l.mu.Unlock()
		l.stats.Received.Add(1)
		l.lastRecv.Store(time.Now().UnixNano())
	}
}

// ReadFrame implements audio.Source: the phone's audio, or silence while
// the prebuffer fills or when the phone is late.
func (l *leg) ReadFrame(pcm []int16) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.relayIn != nil {
		return l.relayIn.ReadFrame(pcm)
	}
	if !l.primed && l.codec != nil {
		need := int(int64(l.codec.Descriptor().SampleRate) * int64(legPrebuffer) / int64(time.Second))
		l.primed = len(l.fifo) >= need
	}
	if !l.primed || len(l.fifo) < len(pcm) {
		clear(pcm)
		if len(l.fifo) == 0 {
			l.primed = false // refill the prebuffer after an underrun
		}
		return nil
	}
	copy(pcm, l.fifo)
	l.fifo = append(l.fifo[:0], l.fifo[len(pcm):]...)
	return nil
}

// WriteFrame implements audio.Sink: one frame the P2P side played, encoded
// with the phone's codec and sent to it.
func (l *leg) WriteFrame(pcm []int16) error {
	l.mu.Lock()
	codec, pt, remote, closed, sending := l.codec, l.pt, l.remote, l.closed, l.sending
	out := l.relayOut
	l.mu.Unlock()
	if out != nil {
		return out.WriteFrame(pcm)
	}
	if closed || !sending || codec == nil || !remote.IsValid() || remote.Port() == 0 {
		return nil
	}
	if l.writeEvent(remote, len(pcm), codec.Descriptor().ClockRate, codec.Descriptor().SampleRate) {
		return nil // an RFC 4733 packet went in place of this frame (dtmf.go)
	}
	n, err := codec.Encode(l.enc, pcm)
	if err != nil {
		return fmt.Errorf("gateway: encode for SIP leg: %w", err)
	}
	l.pkt.PayloadType = pt
	l.pkt.Payload = l.enc[:n]
	m, err := l.pkt.MarshalTo(l.out)
	if err != nil {
		return fmt.Errorf("gateway: marshal RTP: %w", err)
	}
	l.pkt.SequenceNumber++
	l.pkt.Timestamp += uint32(len(pcm)) * uint32(codec.Descriptor().ClockRate) / uint32(codec.Descriptor().SampleRate)
	if _, err := l.conn.WriteToUDPAddrPort(l.out[:m], remote); err == nil {
		l.stats.Sent.Add(1)
	}
	return nil
}

// Close releases the socket. The media engine may still call WriteFrame
// once after; it then sends nothing.
func (l *leg) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	err := l.conn.Close()
	<-l.done
	return err
}

// relay turns the leg into a relay between two P2P calls: what the P2P
// side plays goes to out, and what it sends comes from in. The SIP socket
// is no longer used.
func (l *leg) relay(in, out *pipe) {
	l.mu.Lock()
	l.relayIn, l.relayOut = in, out
	l.mu.Unlock()
}

// pipe carries decoded audio from one P2P call to another inside the
// gateway: a bounded FIFO of samples, silence when it runs dry, the oldest
// samples dropped when the writer runs ahead.
type pipe struct {
	mu  sync.Mutex
	buf []int16
	max int
}

func newPipe(sampleRate int) *pipe { return &pipe{max: sampleRate / 5} } // 200 ms

func (p *pipe) WriteFrame(pcm []int16) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, pcm...)
	if over := len(p.buf) - p.max; over > 0 {
		p.buf = append(p.buf[:0], p.buf[over:]...)
	}
	return nil
}

func (p *pipe) ReadFrame(pcm []int16) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) < len(pcm) {
		clear(pcm)
		return nil
	}
	copy(pcm, p.buf)
	p.buf = append(p.buf[:0], p.buf[len(pcm):]...)
	return nil
}

// currentCodec is the codec the phone's side uses, nil before the SDP.
func (l *leg) currentCodec() codecs.Codec {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.codec
}
