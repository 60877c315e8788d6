package gateway

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/media"
)

// leg is the SIP side of one bridged call: a plain-RTP socket toward the
// phone or trunk. Toward the P2P endpoint it is the call's audio.Source
// (what the phone said) and audio.Sink (what the phone hears), so the
// endpoint's own media engine paces both ways.
//
// Relay without decoding (issue 8 §3): the leg is also an
// audio.PayloadSource and audio.PayloadSink. When the phone's codec is the
// P2P call's (PCMU both sides, say), the phone's payloads go to the P2P
// side as they came and the P2P side's payloads go to the phone as they
// came: no decode, no encode, only a new RTP header (and SRTP on the P2P
// side, the engine's). The phone's G.711 audio is held as its octets (one
// per sample), so a different ptime on either side only repacketizes.
// When the codecs differ (PCMU phone, PCMA call), the leg decodes the
// phone's octets in ReadFrame and encodes in WriteFrame: transcoding
// through PCM, as before. Codecs that are not one octet per sample are
// decoded on arrival into a PCM FIFO and never passed through.
//
// Symmetric RTP (RFC 4961): the leg sends to the address the SDP named
// until the first packet from the phone arrives, then latches onto that
// packet's source (a phone behind NAT) and drops, counting, packets from
// anywhere else. A re-INVITE that moves the phone's media to a new
// address unlatches the leg; the address it moved from may not latch again
// (its stragglers must not take the call back).
//
// Receiving (audio.Poller): while a media session uses the leg as its
// Source it polls the leg once per tick, and the poll drains the phone's
// socket (media.SocketDrain: one recvmmsg, no blocking) on the session's
// timeline, so a phone's packet wakes no goroutine of its own. The leg's
// reader goroutine hands the socket to the pollers when it sees them
// (after a packet, polls within legPollLease) and waits; it takes the
// socket back when polls stop for legPollLease (the call ended, a transfer
// relays elsewhere), so the phone's packets are always read (media
// timeout, DTMF, RTCP-mux), polled or not.
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
	fifo    []int16      // decoded samples from the phone, oldest first (not G.711)
	octets  []byte       // the phone's G.711 payload octets, oldest first
	octet   bool         // codec is one octet per sample: octets, not fifo
	// maxSamples and prebufSamples are legMaxBuffer and legPrebuffer in
	// samples of codec.
	maxSamples, prebufSamples int
	primed                    bool // playout started (a short prebuffer absorbs jitter)
	// liveStart: when playout first starts, what is held beyond the
	// prebuffer is dropped (an answered pickup holds the phone's audio
	// while the pull runs up to step 4: pickup.go, leg.ready).
	liveStart bool
	// relayIn and relayOut, once set (a transfer, refer.go), replace the
	// phone: ReadFrame plays relayIn, WriteFrame feeds relayOut.
	relayIn, relayOut *pipe
	closed            bool

	// sending state, owned by WriteFrame (one caller: the media engine;
	// sendMu held)
	sendMu sync.Mutex
	pkt    rtp.Packet
	out    []byte
	enc    []byte
	// gaps are the pauses longer than gapHeard between two packets sent
	// to the phone, for a handoff's gap_heard_by_c_ms (handofflog.go).
	gaps sendGaps

	// receiving state (readLoop's or a Poll's; pollMu orders them)
	rx       *media.SocketDrain
	rxHandle func(p []byte, from netip.AddrPort, at time.Time, truncated bool)
	rxPkt    rtp.Packet
	rxPCM    []int16
	// pollMu is held by a Poll while it drains and by readLoop while it
	// hands the socket over or takes it back; polled (guarded by it) says
	// the pollers have the socket and readLoop does not read it.
	pollMu   sync.Mutex
	polled   bool
	lastPoll atomic.Int64 // unix nanos of the last Poll
	stop     chan struct{}

	lastRecv atomic.Int64 // unix nanos of the last accepted packet
	// quiet: the phone's SDP says it sends nothing (a=recvonly or
	// a=inactive: on hold), so its silence is no media timeout.
	quiet atomic.Bool

	stats legStats
	dtmf  legDTMF // RFC 4733 both ways (dtmf.go)
	srtp  legSRTP // SDES-SRTP both ways (srtp.go)
	rtcp  legRTCP // RTCP/SRTCP (rtcp.go)
	done  chan struct{}
}

// legStats are the SIP leg's packet counters.
type legStats struct {
	Received, Sent, WrongSource, Malformed, WrongPT, Events, Overflow atomic.Uint64
	// Passed counts frames relayed without decoding or encoding, both
	// ways (ReadPayload and WritePayload).
	Passed atomic.Uint64
	// SRTPAuthFailed and SRTPReplayed count SRTP packets dropped as not
	// authentic or as replays (srtp.go).
	SRTPAuthFailed, SRTPReplayed atomic.Uint64
	// Underruns counts times playout ran dry and re-primed (the frames
	// until it is primed again are silence); Emptied counts frames read
	// that left nothing buffered, so the phone's next packet had no
	// margin at all: one late packet then is an underrun.
	Underruns, Emptied atomic.Uint64
}

// legPrebuffer is how much audio from the phone is held before playout
// starts: enough for the jitter of a LAN phone, small enough to be unheard.
const legPrebuffer = 40 * time.Millisecond

// legMaxBuffer bounds the samples held; past it the oldest are dropped (a
// phone sending faster than real time cannot grow memory).
const legMaxBuffer = 200 * time.Millisecond

// legPollLease is how long the leg's reader leaves the socket to the
// pollers after their last Poll before it reads the socket itself again.
// It is also how often the waiting reader wakes to check.
const legPollLease = 200 * time.Millisecond

// legDatagram is the receive buffer per datagram.
const legDatagram = 1500

func openLeg(ip netip.Addr) (*leg, error) {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		return nil, fmt.Errorf("gateway: open RTP port on %s: %w", ip, err)
	}
	l := &leg{conn: conn, dtmfPT: -1, done: make(chan struct{}), stop: make(chan struct{}), out: make([]byte, 1500), enc: make([]byte, 1200),
		rxPCM: make([]int16, 1200)}
	// Room for the most CSRCs a header can name (RFC 3550 §5.1, CC is 4
	// bits), so that parsing does not allocate per packet.
	l.rxPkt.CSRC = make([]uint32, 0, 15)
	l.rxPkt.Extensions = make([]rtp.Extension, 0, 16)
	l.rxHandle = l.handleDatagram
	rx, err := media.NewSocketDrain(conn, legDatagram)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("gateway: RTP port on %s: %w", ip, err)
	}
	l.rx = rx
	var b [8]byte
	_, _ = rand.Read(b[:])
	l.pkt.Header = rtp.Header{Version: 2, SSRC: binary.BigEndian.Uint32(b[:4]), SequenceNumber: binary.BigEndian.Uint16(b[4:6]), Timestamp: binary.BigEndian.Uint32(b[4:8])}
	l.lastRecv.Store(time.Now().UnixNano())
	if err := l.openRTCP(ip); err != nil { // rtcp.go
		_ = conn.Close()
		return nil, err
	}
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
	if !audio.SameCodec(l.codec, codec) {
		// What is buffered is in the old codec: drop it, and size the
		// FIFOs for the new one once, so the packet path never grows them.
		l.fifo, l.octets, l.primed = l.fifo[:0], l.octets[:0], false
		l.octet = codec != nil && octetCodec(codec)
		l.maxSamples, l.prebufSamples = 0, 0
		if codec != nil {
			l.maxSamples, l.prebufSamples = bufferSamples(codec, legMaxBuffer), bufferSamples(codec, legPrebuffer)
		}
		if n := l.maxSamples; l.octet && cap(l.octets) < n {
			l.octets = make([]byte, 0, n)
		} else if !l.octet && cap(l.fifo) < n {
			l.fifo = make([]int16, 0, n)
		}
	}
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
	if l.quiet.Load() {
		return 0
	}
	return now.Sub(time.Unix(0, l.lastRecv.Load()))
}

// expectMedia says whether the phone sends RTP (its SDP direction); when
// it starts again the media timeout counts from now.
func (l *leg) expectMedia(sends bool) {
	if l.quiet.Swap(!sends) && sends {
		l.lastRecv.Store(time.Now().UnixNano())
	}
}

func (l *leg) readLoop() {
	defer close(l.done)
	buf := make([]byte, legDatagram)
	lease := time.NewTimer(legPollLease)
	defer lease.Stop()
	for {
		if l.pollsFresh() {
			// Hand the socket to the pollers and wait until their polls
			// stop (or the leg closes).
			l.pollMu.Lock()
			l.polled = true
			l.pollMu.Unlock()
			for l.pollsFresh() {
				lease.Reset(legPollLease)
				select {
				case <-l.stop:
					return
				case <-lease.C:
				}
			}
			l.pollMu.Lock()
			l.polled = false
			l.pollMu.Unlock()
			_ = l.conn.SetReadDeadline(time.Time{}) // the portable drain sets deadlines
		}
		n, from, err := l.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		l.handleDatagram(buf[:n], from, time.Time{}, n == len(buf))
	}
}

// pollsFresh says whether a Poll came within legPollLease.
func (l *leg) pollsFresh() bool {
	return time.Since(time.Unix(0, l.lastPoll.Load())) < legPollLease
}

// Poll implements audio.Poller: the media session's timeline, once per
// tick, takes what the phone sent since (when the reader goroutine has
// handed the socket over; until then the reader still reads it).
func (l *leg) Poll() {
	l.lastPoll.Store(time.Now().UnixNano())
	l.pollMu.Lock()
	defer l.pollMu.Unlock()
	if !l.polled {
		return
	}
	// A read error other than a closed socket (an ICMP error surfaced)
	// is dropped like readLoop drops it: the next poll reads again.
	_ = l.rx.Drain(l.rxHandle)
}

// handleDatagram processes one datagram from the phone's socket (on
// readLoop, or on a Poll: never both at once).
func (l *leg) handleDatagram(b []byte, from netip.AddrPort, _ time.Time, truncated bool) {
	if truncated {
		l.stats.Malformed.Add(1)
		return
	}
	pkt := &l.rxPkt
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	if l.rtcpMuxed(b, from) { // RTCP with rtcp-mux (rtcp.go)
		return
	}
	data, ok := l.unprotect(b) // SRTP: decrypted and authenticated (srtp.go)
	if !ok {
		return
	}
	if err := pkt.Unmarshal(data); err != nil {
		l.stats.Malformed.Add(1)
		return
	}
	l.mu.Lock()
	if l.codec == nil {
		l.mu.Unlock()
		return
	}
	switch {
	case !l.latched && (!l.mayLatch(from.Addr()) || from == l.left):
		// Latch only onto the host the SDP named or the one the
		// phone signals from (a phone behind NAT): the first packet
		// from a stranger must not take the call's audio, nor one
		// from the address the phone has just moved away from.
		l.mu.Unlock()
		l.stats.WrongSource.Add(1)
		return
	case !l.latched:
		l.remote, l.latched = from, true
	case from != l.remote:
		l.mu.Unlock()
		l.stats.WrongSource.Add(1)
		return
	}
	l.rtcpOnRTP(pkt.SSRC, pkt.SequenceNumber, pkt.Timestamp, time.Now()) // reception stats (rtcp.go)
	if int(pkt.PayloadType) == l.dtmfPT {
		l.mu.Unlock()
		l.stats.Events.Add(1)
		l.lastRecv.Store(time.Now().UnixNano())
		l.dtmfReceived(pkt) // dtmf.go
		return
	}
	if pkt.PayloadType != l.pt {
		l.mu.Unlock()
		l.stats.WrongPT.Add(1)
		return
	}
	if l.octet {
		// Kept encoded: passed through, or decoded when read.
		l.octets = pushBounded(l.octets, pkt.Payload, l.maxSamples, &l.stats.Overflow)
	} else {
		k, err := l.codec.Decode(l.rxPCM, pkt.Payload)
		if err != nil {
			l.mu.Unlock()
			l.stats.Malformed.Add(1)
			return
		}
		l.fifo = pushBounded(l.fifo, l.rxPCM[:k], l.maxSamples, &l.stats.Overflow)
	}
	l.mu.Unlock()
	l.stats.Received.Add(1)
	l.lastRecv.Store(time.Now().UnixNano())
}

// ReadFrame implements audio.Source: the phone's audio, or silence while
// the prebuffer fills or when the phone is late. G.711 octets are decoded
// here (the transcoding path: the call's codec is another).
func (l *leg) ReadFrame(pcm []int16) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.relayIn != nil {
		return l.relayIn.ReadFrame(pcm)
	}
	return l.readFrameLocked(pcm)
}

// readFrameLocked is ReadFrame from the phone's audio, relay or not (a
// trunk call's transfer reads it for the new call: trunkxfer.go). l.mu is
// held.
func (l *leg) readFrameLocked(pcm []int16) error {
	if l.octet {
		drop, ok := l.ready(len(l.octets), len(pcm))
		if !ok {
			clear(pcm)
			return nil
		}
		l.octets = consume(l.octets, drop)
		n, err := l.codec.Decode(pcm, l.octets[:len(pcm)])
		l.octets = consume(l.octets, len(pcm))
		if err != nil {
			clear(pcm)
			return fmt.Errorf("gateway: decode SIP leg audio: %w", err)
		}
		clear(pcm[n:])
		return nil
	}
	drop, ok := l.ready(len(l.fifo), len(pcm))
	if !ok {
		clear(pcm)
		return nil
	}
	l.fifo = consume(l.fifo, drop)
	copy(pcm, l.fifo)
	l.fifo = consume(l.fifo, len(pcm))
	return nil
}

// ReadPayload implements audio.PayloadSource: the phone's next samples
// octets as they came, when the call's codec is the phone's (a relay
// without decoding). It declines (ok false) for another codec, during a
// transfer relay, and while the prebuffer fills or after an underrun;
// ReadFrame then plays the frame (decoded, or silence).
func (l *leg) ReadPayload(codec codecs.Codec, samples int, dst []byte) (int, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.relayIn != nil || !l.passes(codec) || samples > len(dst) {
		return 0, false, nil
	}
	drop, ok := l.ready(len(l.octets), samples)
	if !ok {
		return 0, false, nil
	}
	l.octets = consume(l.octets, drop)
	n := copy(dst, l.octets[:samples])
	l.octets = consume(l.octets, samples)
	l.stats.Passed.Add(1)
	return n, true, nil
}

// ready applies the prebuffer to a FIFO of have samples from which need
// are wanted: playout starts once legPrebuffer is held, and stops (to
// refill it) when the FIFO has run dry. l.mu is held.
//
// With liveStart, when playout first starts with more than the prebuffer
// held, drop is how many of the oldest samples the caller discards first,
// so that the phone's audio is delayed by the prebuffer and not by how
// long nobody read it: an answered pickup holds the phone's first packets
// while the pull runs up to step 4 (pickup.go).
func (l *leg) ready(have, need int) (drop int, ok bool) {
	if !l.primed && l.codec != nil {
		l.primed = have >= l.prebufSamples
		if keep := max(l.prebufSamples, need); l.primed && l.liveStart && have > keep {
			drop = have - keep
			have = keep
		}
		if l.primed {
			l.liveStart = false
		}
	}
	if !l.primed || have < need {
		if have == 0 && l.primed {
			l.primed = false // refill the prebuffer after an underrun
			l.stats.Underruns.Add(1)
		}
		return 0, false
	}
	if have == need {
		l.stats.Emptied.Add(1)
	}
	return drop, true
}

// passes says whether frames in the call's codec can pass the leg as they
// are: the phone uses the same codec, one octet per sample. l.mu is held.
func (l *leg) passes(call codecs.Codec) bool {
	return l.octet && audio.SameCodec(l.codec, call)
}

// WriteFrame implements audio.Sink: one frame the P2P side played, encoded
// with the phone's codec and sent to it.
func (l *leg) WriteFrame(pcm []int16) error {
	l.mu.Lock()
	out := l.relayOut
	l.mu.Unlock()
	if out != nil {
		return out.WriteFrame(pcm)
	}
	return l.writeFrameDirect(pcm)
}

// writeFrameDirect is WriteFrame to the phone, relay or not
// (trunkxfer.go).
func (l *leg) writeFrameDirect(pcm []int16) error {
	l.mu.Lock()
	codec, pt, remote, closed, sending := l.codec, l.pt, l.remote, l.closed, l.sending
	l.mu.Unlock()
	if closed || !sending || codec == nil || !remote.IsValid() || remote.Port() == 0 {
		return nil
	}
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	if l.writeEvent(remote, len(pcm), codec.Descriptor().ClockRate, codec.Descriptor().SampleRate) {
		return nil // an RFC 4733 packet went in place of this frame (dtmf.go)
	}
	n, err := codec.Encode(l.enc, pcm)
	if err != nil {
		return fmt.Errorf("gateway: encode for SIP leg: %w", err)
	}
	return l.send(codec, pt, remote, l.enc[:n], len(pcm))
}

// WritePayload implements audio.PayloadSink: a frame the P2P side
// received, sent to the phone as it is when the phone's codec is the
// call's (no decode, no encode). It declines for another codec and during
// a transfer relay; the engine then decodes and calls WriteFrame.
func (l *leg) WritePayload(codec codecs.Codec, samples int, payload []byte) (bool, error) {
	l.mu.Lock()
	mine, pt, remote, closed, sending := l.codec, l.pt, l.remote, l.closed, l.sending
	ok := l.relayOut == nil && l.passes(codec)
	l.mu.Unlock()
	if !ok {
		return false, nil
	}
	if closed || !sending || !remote.IsValid() || remote.Port() == 0 {
		return true, nil // taken: the phone wants nothing now
	}
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	if l.writeEvent(remote, samples, mine.Descriptor().ClockRate, mine.Descriptor().SampleRate) {
		return true, nil // an RFC 4733 packet went in place of this frame (dtmf.go)
	}
	l.stats.Passed.Add(1)
	return true, l.send(mine, pt, remote, payload, samples)
}

// send sends one payload of samples samples to the phone under the leg's
// own SSRC, sequence numbers and timestamps. One caller at a time: the
// media engine's timeline goroutine; its callers hold sendMu, which
// orders the two engines of a trunk call's transfer at the moment it
// switches (trunkxfer.go).
func (l *leg) send(codec codecs.Codec, pt uint8, remote netip.AddrPort, payload []byte, samples int) error {
	l.pkt.PayloadType = pt
	l.pkt.Payload = payload
	m, err := l.pkt.MarshalTo(l.out)
	if err != nil {
		return fmt.Errorf("gateway: marshal RTP: %w", err)
	}
	d := codec.Descriptor()
	l.rtcpOnSend(l.pkt.Timestamp, len(payload)) // SR sender info (rtcp.go)
	l.pkt.SequenceNumber++
	l.pkt.Timestamp += uint32(int64(samples) * int64(d.ClockRate) / int64(d.SampleRate))
	wire, err := l.protect(l.out[:m]) // SRTP (srtp.go)
	if err != nil {
		return err
	}
	if _, err := l.conn.WriteToUDPAddrPort(wire, remote); err == nil {
		l.stats.Sent.Add(1)
		l.gaps.sent(time.Now())
	}
	return nil
}

// sendGaps keeps the last pauses longer than gapHeard between two RTP
// packets sent to the phone: a fixed ring, no allocation per packet.
type sendGaps struct {
	mu   sync.Mutex
	last time.Time
	ring [32]sendGap
	next int
}

type sendGap struct {
	end time.Time // when the packet after the pause went out
	gap time.Duration
}

func (s *sendGaps) sent(now time.Time) {
	s.mu.Lock()
	if !s.last.IsZero() {
		if d := now.Sub(s.last); d > gapHeard {
			s.ring[s.next] = sendGap{end: now, gap: d}
			s.next = (s.next + 1) % len(s.ring)
		}
	}
	s.last = now
	s.mu.Unlock()
}

// longestGap is the longest pause between two packets sent to the phone
// that overlaps [from, to]; while the handoff runs (running), a pause
// still going on counts up to to. 0 when every pause was within gapHeard,
// or nothing was sent. (A finished handoff counts only pauses that ended:
// the stream of a call that ended after it stops for good.)
func (l *leg) longestGap(from, to time.Time, running bool) time.Duration {
	s := &l.gaps
	s.mu.Lock()
	defer s.mu.Unlock()
	var longest time.Duration
	for _, g := range s.ring {
		if g.end.IsZero() || g.end.Before(from) || g.end.Add(-g.gap).After(to) {
			continue
		}
		longest = max(longest, g.gap)
	}
	if now := time.Now(); running && !s.last.IsZero() && s.last.After(from) && s.last.Before(to) {
		// Nothing sent since s.last: the pause runs to the window's end.
		end := to
		if now.Before(end) {
			end = now
		}
		if d := end.Sub(s.last); d > gapHeard {
			longest = max(longest, d)
		}
	}
	return longest
}

// octetCodec says whether a codec's payload is one octet per sample at the
// RTP clock rate (G.711, RFC 3551 §4.5.14): its audio can be buffered,
// split and joined as octets without decoding.
func octetCodec(c codecs.Codec) bool {
	d := c.Descriptor()
	return (strings.EqualFold(d.Name, "PCMU") || strings.EqualFold(d.Name, "PCMA")) &&
		d.SampleRate == d.ClockRate && d.Channels <= 1
}

// bufferSamples is how many samples of codec d holds.
func bufferSamples(c codecs.Codec, d time.Duration) int {
	return int(int64(c.Descriptor().SampleRate) * int64(d) / int64(time.Second))
}

// pushBounded appends add to fifo, dropping (and counting) the oldest
// elements so that at most max remain; within max it never grows the
// backing array past max.
func pushBounded[T any](fifo, add []T, max int, dropped *atomic.Uint64) []T {
	if len(add) > max {
		dropped.Add(uint64(len(add) - max))
		add = add[len(add)-max:]
	}
	if over := len(fifo) + len(add) - max; over > 0 {
		dropped.Add(uint64(over))
		fifo = consume(fifo, over)
	}
	return append(fifo, add...)
}

// consume drops the n oldest elements of fifo, in place.
func consume[T any](fifo []T, n int) []T {
	return fifo[:copy(fifo, fifo[n:])]
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
	close(l.stop)
	err := l.conn.Close()
	<-l.done
	l.closeRTCP()
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
	mu      sync.Mutex
	buf     []int16
	max     int
	dropped atomic.Uint64 // samples dropped because the writer ran ahead
}

func newPipe(sampleRate int) *pipe { return &pipe{max: sampleRate / 5} } // 200 ms

func (p *pipe) WriteFrame(pcm []int16) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = pushBounded(p.buf, pcm, p.max, &p.dropped)
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
	p.buf = consume(p.buf, len(pcm))
	return nil
}

// currentCodec is the codec the phone's side uses, nil before the SDP.
func (l *leg) currentCodec() codecs.Codec {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.codec
}
