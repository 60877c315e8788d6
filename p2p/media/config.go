package media

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
)

// Defaults and limits of Config.
const (
	// DefaultPtime is the packet time used when Config.Ptime is zero: 20 ms,
	// the usual G.711 packetization (RFC 3551 §4.5).
	DefaultPtime = 20 * time.Millisecond
	// MaxPtime is the longest packet time accepted.
	MaxPtime = 120 * time.Millisecond
	// DefaultJitterDelay is the playout delay used when Config.JitterDelay
	// is zero.
	DefaultJitterDelay = 40 * time.Millisecond
	// MaxJitterDelay is the longest playout delay accepted.
	MaxJitterDelay = 2 * time.Second
	// DefaultStaleSourceTimeout is Config.StaleSourceTimeout when zero.
	DefaultStaleSourceTimeout = 250 * time.Millisecond
	// DefaultConsentTimeout is how long a remote keeps its consent to
	// receive without proving it again (an authenticated packet from it):
	// RFC 7675 §5.1's 30 seconds.
	DefaultConsentTimeout = 30 * time.Second
	// DefaultConsentProbeInterval is how often a packet goes to a remote
	// that has not consented (not confirmed yet, or consent lapsed): one
	// probe per second. It lets two peers that each wait for the other's
	// proof find each other, and bounds what a lying peer can reflect at a
	// third party to one packet per second.
	DefaultConsentProbeInterval = time.Second
)

// Config describes one media session. The zero values of optional fields
// select the documented defaults.
type Config struct {
	// Local is the address to bind; port 0 picks a free port.
	Local netip.AddrPort
	// Conn, when set, is a bound socket the session takes over instead of
	// binding Local (Local is then its address): the socket of a session
	// ended with Detach, so that a session reopened on the same port (new
	// codec, keys learnt from the answer) cannot lose that port to another
	// socket between a close and a bind. The session owns it from Open on
	// (also when Open fails).
	Conn *net.UDPConn
	// Codec encodes what is sent and decodes what is received; its payload
	// type is the only one accepted.
	Codec codecs.Codec
	// Ptime is the packet time (audio per packet); DefaultPtime when zero.
	// Both ends must use the same ptime (signaled with the codec): the
	// jitter buffer plays one received packet per ptime.
	Ptime time.Duration
	// SSRC is this sender's synchronization source; 0 picks a random one
	// (RFC 3550 §8.1).
	SSRC uint32
	// SendKeys and RecvKeys switch on SRTP (AES_CM_128_HMAC_SHA1_80,
	// RFC 3711): both nil means plain RTP, both set means SRTP.
	SendKeys *Keys
	RecvKeys *Keys
	// JitterDelay is the fixed playout delay, measured from the arrival of
	// the first packet of a source; DefaultJitterDelay when zero.
	JitterDelay time.Duration
	// StaleSourceTimeout bounds how long a replaced source stays stale:
	// while the current source has delivered a packet within this time,
	// packets of a source it replaced are stragglers and are dropped
	// (RFC 3550 §8.2; handoff step 4: play exactly one source). Once the
	// current source has been silent that long, a replaced one may take
	// over again (a handoff that does not happen: B resumes). Zero means
	// DefaultStaleSourceTimeout; the P2P endpoint derives it from the
	// handoff's step 6 timer, a few packet times. Negative is an error.
	StaleSourceTimeout time.Duration
	// OnSourceSwitch, when set, is told each time playout switches to
	// another source (RFC 3550 §8.2): ssrc is the new one, returned says
	// it is one it had replaced, playing again because its replacement
	// went silent for StaleSourceTimeout (a handoff's new device that
	// stopped before it took the call: B's stream is back). The far party
	// of a handoff learns of the new device's stream (step 4) and of its
	// silence from it, before any signaling. It is called on the
	// receiving goroutine for the packet that switched: it must return
	// at once and must not call into the session.
	OnSourceSwitch func(ssrc uint32, returned bool)
	// Source provides the audio to send; nil sends silence.
	//
	// Source and Sink are called on the session's timeline goroutine. They
	// must return promptly and must not call Start, Stats or Rebind of the
	// same session (those wait for that goroutine).
	Source audio.Source
	// Sink receives the played-out audio, one frame per packet time; nil
	// discards it. The frame is reused after WriteFrame returns.
	Sink audio.Sink
	// LatchAuthenticated accepts an SRTP packet from an address that is not
	// an allowed source when it authenticates with RecvKeys, and allows
	// that address from then on: symmetric latching guarded by SRTP
	// authentication. The far party of a handoff needs it to hear the new
	// device's stream (keyed like the old device's, new SSRC) before
	// signaling names its address, and to follow a peer that moved before
	// its new address arrives. Unauthenticated packets from such addresses
	// still count as WrongSource. Ignored for plain RTP.
	LatchAuthenticated bool
	// FirstSequence, when set, is the first RTP sequence number sent;
	// nil means random, as RFC 3550 §5.1 asks. Tests set it to reach a
	// sequence wrap without sending 65,536 packets.
	FirstSequence *uint16
	// RemoteROC, when set, is the SRTP roll-over counter (RFC 3711 §3.3.1)
	// of the peer's stream at the time this session starts receiving it:
	// a session that takes over a stream already running (a handoff, a
	// move) must know how many times its sequence number has wrapped, or
	// every packet fails authentication once it has. With its Seq the
	// first packet's counter is estimated (it may have wrapped since);
	// until a packet of the stream authenticates, one more wrap than the
	// estimate is tried too (two authentication checks at most per
	// packet), since the index handed on may be older than the stream by
	// more than half the sequence space.
	RemoteROC *ROC
	// ConsentTimeout is how long the remote may go without proving that it
	// receives (an authenticated packet from its address, RFC 7675's
	// consent freshness in spirit) before full-rate sending stops;
	// DefaultConsentTimeout when zero, never when negative.
	ConsentTimeout time.Duration
	// ConsentProbeInterval spaces the packets sent to a remote without
	// consent (SetRemoteUnconfirmed, or consent lapsed);
	// DefaultConsentProbeInterval when zero, no probes at all when negative.
	ConsentProbeInterval time.Duration
	// ContinueTicks, when set, is the next tick of the session this one
	// replaces (Session.NextTick of the old one, taken before it closed):
	// this session's timeline continues the old one's instead of starting
	// one of its own at Start. Its first tick is at that time (at once
	// when it is less than one ptime past), its later ones one ptime
	// apart, so the Source is read, and the far party sent a packet, once
	// per ptime across the switch. Handoff steps 8-10 replace A's
	// provisional session by its final one in about a millisecond: a
	// timeline of its own would read a SIP leg twice within that
	// millisecond and leave it with one frame less of margin for the rest
	// of the call (docs/benchmarks.md §23). Ignored when it is more than
	// one ptime past at Start (the old timeline is too old to continue)
	// and for a batch codec, whose sessions share one tick clock anyway.
	ContinueTicks time.Time
	// Impairment, when set, drops and delays outgoing packets on purpose
	// (a loss/jitter shim for benchmarks and demos on loopback).
	Impairment *Impairment
	// Now, when set, is the clock Stats.FirstPacket and Stats.LastPacket
	// are read on (once per drain of the sockets, so within a tick of the
	// arrival): an owner that compares them with its own clock (the
	// endpoint's handoff checks, on its injectable Clock) gives its
	// clock's Now. Nil: the arrival time. Playout and jitter always use
	// the arrival time.
	Now func() time.Time
	// Logger receives the session's logs; nil discards them.
	Logger *slog.Logger
}

// ROC is an SRTP roll-over counter for one SSRC, with the highest
// sequence number authenticated under it when known: together they are
// RFC 3711 §3.3.1's receiver state (ROC, s_l), the packet index of the
// stream so far.
//
// A stream handed to a new session keeps running while the handoff's
// signaling travels: its sequence number may wrap between the moment
// the old session reported the counter and the first packet the new
// session gets. With only ROC the new session decrypts that packet (and
// every later one) under the old counter and never authenticates the
// stream again; with Seq it estimates the packet's counter as the RFC
// does (ROC-1, ROC or ROC+1, from s_l and the packet's SEQ).
type ROC struct {
	SSRC uint32
	ROC  uint32
	// Seq is s_l, the highest sequence number authenticated with ROC;
	// HasSeq says it is known (a peer older than this field sends only
	// ROC, which is then taken as it is).
	Seq    uint16
	HasSeq bool
}

// estimateROC is RFC 3711 §3.3.1's estimate of the roll-over counter of
// a packet with sequence number seq, from the receiver's state: roc and
// sl, the highest sequence number authenticated with it. A counter
// cannot go below 0.
func estimateROC(roc uint32, sl, seq uint16) uint32 {
	const half = 1 << 15
	if sl < half {
		if int32(seq)-int32(sl) > half && roc > 0 {
			return roc - 1
		}
		return roc
	}
	if int32(sl)-half > int32(seq) {
		return roc + 1
	}
	return roc
}

// settings is a validated Config with defaults applied and derived values.
type settings struct {
	Config
	desc            codecs.Descriptor
	samplesPerFrame int
	step            uint32
	// payloadCap is the encoder's output buffer size: room for 16-bit
	// linear PCM (the largest sane audio payload) plus slack.
	payloadCap int
	// datagramCap is the receive buffer size per datagram.
	datagramCap int
}

// maxDatagram is the smallest receive buffer: an Ethernet MTU. Audio RTP
// packets are far smaller; anything that does not fit is not ours.
const maxDatagram = 1500

// rtpHeaderLen is the fixed RTP header (RFC 3550 §5.1) and srtpTagLen the
// HMAC-SHA1-80 authentication tag (RFC 3711 §4.2, §8.2).
const (
	rtpHeaderLen = 12
	srtpTagLen   = 10
)

func (c Config) settings() (settings, error) {
	if c.Codec == nil {
		return settings{}, fmt.Errorf("media: config: %w", ErrNoCodec)
	}
	if c.Conn != nil {
		if ua, ok := c.Conn.LocalAddr().(*net.UDPAddr); ok {
			c.Local = ua.AddrPort()
		}
	}
	if !c.Local.IsValid() {
		return settings{}, fmt.Errorf("media: config: local %q: %w", c.Local, ErrInvalidAddress)
	}
	c.Local = unmap(c.Local)
	if (c.SendKeys == nil) != (c.RecvKeys == nil) {
		return settings{}, fmt.Errorf("media: config: %w", ErrKeysMismatch)
	}
	if err := c.Impairment.validate(); err != nil {
		return settings{}, err
	}
	if c.Ptime == 0 {
		c.Ptime = DefaultPtime
	}
	if c.JitterDelay == 0 {
		c.JitterDelay = DefaultJitterDelay
	}
	if c.JitterDelay < 0 || c.JitterDelay > MaxJitterDelay {
		return settings{}, fmt.Errorf("media: config: jitter delay %v not in (0, %v]: %w", c.JitterDelay, MaxJitterDelay, ErrInvalidJitterDelay)
	}
	if c.StaleSourceTimeout == 0 {
		c.StaleSourceTimeout = DefaultStaleSourceTimeout
	}
	if c.StaleSourceTimeout < 0 {
		return settings{}, fmt.Errorf("media: config: stale source timeout %v is negative: %w", c.StaleSourceTimeout, ErrInvalidStaleTimeout)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ConsentTimeout == 0 {
		c.ConsentTimeout = DefaultConsentTimeout
	}
	if c.ConsentProbeInterval == 0 {
		c.ConsentProbeInterval = DefaultConsentProbeInterval
	}
	d := c.Codec.Descriptor()
	if d.SampleRate <= 0 || d.ClockRate <= 0 || d.PayloadType > 127 {
		return settings{}, fmt.Errorf("media: config: codec %q (pt %d, %d Hz, clock %d Hz): %w",
			d.Name, d.PayloadType, d.SampleRate, d.ClockRate, ErrInvalidCodec)
	}
	if c.Ptime < time.Millisecond || c.Ptime > MaxPtime {
		return settings{}, fmt.Errorf("media: config: ptime %v not in [1ms, %v]: %w", c.Ptime, MaxPtime, ErrInvalidPtime)
	}
	if d.FrameDuration > 0 && c.Ptime != d.FrameDuration {
		return settings{}, fmt.Errorf("media: config: ptime %v: codec %q works with %v frames only: %w", c.Ptime, d.Name, d.FrameDuration, ErrInvalidPtime)
	}
	s := settings{Config: c, desc: d}
	s.samplesPerFrame = d.SamplesPerFrame(c.Ptime)
	s.step = d.TimestampStep(c.Ptime)
	if s.samplesPerFrame < 1 || s.step < 1 {
		return settings{}, fmt.Errorf("media: config: ptime %v holds no sample of %q: %w", c.Ptime, d.Name, ErrInvalidPtime)
	}
	s.payloadCap = 2*s.samplesPerFrame + 64
	s.datagramCap = max(maxDatagram, rtpHeaderLen+s.payloadCap+srtpTagLen)
	return s, nil
}

// unmap normalizes IPv4-mapped IPv6 addresses so that address comparisons
// do not depend on the socket family that reported them.
func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// listenUDP binds a UDP socket on local, honouring ctx for the bind.
func listenUDP(ctx context.Context, local netip.AddrPort) (*net.UDPConn, netip.AddrPort, error) {
	network := "udp4"
	if local.Addr().Is6() {
		network = "udp6"
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, network, local.String())
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	conn, ok := pc.(*net.UDPConn)
	if !ok {
		_ = pc.Close()
		return nil, netip.AddrPort{}, fmt.Errorf("unexpected packet conn %T", pc)
	}
	bound := local
	if ua, ok := conn.LocalAddr().(*net.UDPAddr); ok {
		bound = unmap(ua.AddrPort())
	}
	return conn, bound, nil
}
