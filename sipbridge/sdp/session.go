package sdp

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
)

// defaultCodecs are the payload types we use when we are the offerer
// (RFC 3551 §6 static types; a dynamic type for telephone-event).
var defaultCodecs = map[string]Codec{
	"PCMU": {PT: 0, Name: "PCMU", ClockRate: 8000},
	"PCMA": {PT: 8, Name: "PCMA", ClockRate: 8000},
	"G722": {PT: 9, Name: "G722", ClockRate: 8000},
}

// Known reports whether name (any case) is a codec this package can put in
// an offer or answer: one with a static payload type (RFC 3551 §6).
func Known(name string) bool {
	_, ok := defaultCodecs[strings.ToUpper(name)]
	return ok
}

// telephoneEventPT is the dynamic payload type we offer for RFC 4733 events.
const telephoneEventPT = 101

// Local is what our side of a media stream wants.
type Local struct {
	Addr      netip.Addr
	Port      int
	Codecs    []string  // preference order, e.g. {"PCMU", "PCMA"}
	PTime     int       // ms, 0 to leave out
	DTMF      bool      // offer/accept RFC 4733 telephone-event
	Direction Direction // SendRecv normally; SendOnly to put the far side on hold
	// SRTP is the SDES-SRTP policy; Key is our key-salt (KeySaltLen
	// octets, NewKey), put in every a=crypto we send. It is needed when
	// SRTP is SRTPOptional or SRTPRequired.
	SRTP SRTPMode
	Key  []byte
	// RTCPPort is our RTCP port, put in a=rtcp (RFC 3605) when it is not
	// Port+1; 0 leaves it out. RTCPMux offers rtcp-mux (RFC 5761 §5.1.1)
	// and accepts it when offered; the answer to an offer without it
	// keeps RTCP on RTCPPort.
	RTCPPort int
	RTCPMux  bool
}

// rtcpAttrs sets o's a=rtcp and a=rtcp-mux from l: mux when wanted, and
// a=rtcp naming our RTCP port when it is not the RTP port + 1, in an offer
// also next to rtcp-mux (RFC 5761 §5.1.1: the fallback when the answerer
// does not multiplex), in an answer only without it.
func (l *Local) rtcpAttrs(o *Offer, mux, offering bool) {
	o.RTCPMux = mux
	if l.RTCPPort > 0 && l.RTCPPort != l.Port+1 && (offering || !mux) {
		o.RTCPPort = l.RTCPPort
	}
}

// secureLocal checks that l can key SRTP.
func (l *Local) secureLocal() error {
	if len(l.Key) != KeySaltLen {
		return fmt.Errorf("%w: SRTP %s needs a %d-octet key, have %d", ErrInvalid, l.SRTP, KeySaltLen, len(l.Key))
	}
	return nil
}

// Session produces our successive SDP bodies for one dialog. The o= session
// version starts at the session ID's value rule of RFC 3264 §5 (any value) and
// is incremented whenever a body differs from the previous one, and kept when
// it is the same (RFC 3264 §8). A Session is not safe for concurrent use: the
// call goroutine that owns the dialog owns it.
type Session struct {
	id      uint64
	version uint64
	last    []byte // previous body rendered with version 0, to detect change
	// offering is set when the last body was our offer (not an answer);
	// offered are its a=crypto attributes (RFC 4568 §7.1.3: the answer
	// must pick one of them).
	offering bool
	offered  []Crypto
}

// NewSession returns a Session with the given o= session ID (e.g. random or
// NTP time) whose first body has version 1.
func NewSession(id uint64) *Session { return &Session{id: id} }

// Version is the o= version of the last body produced (0 before any).
func (s *Session) Version() uint64 { return s.version }

func (s *Session) render(o *Offer) ([]byte, error) {
	o.SessionID = s.id
	o.SessionVersion = 0
	probe, err := o.Marshal()
	if err != nil {
		return nil, err
	}
	if s.version == 0 || !bytes.Equal(probe, s.last) {
		s.version++
		s.last = probe
	}
	o.SessionVersion = s.version
	return o.Marshal()
}

// Offer builds our offer: the local codecs in preference order.
func (s *Session) Offer(l Local) ([]byte, *Offer, error) {
	o := &Offer{Addr: l.Addr, Port: l.Port, PTime: l.PTime, Direction: l.Direction, TelephoneEventPT: -1}
	if o.Direction == DirectionUnknown {
		o.Direction = SendRecv
	}
	for _, name := range l.Codecs {
		c, ok := defaultCodecs[strings.ToUpper(name)]
		if !ok {
			return nil, nil, fmt.Errorf("sipbridge/sdp: offer: %w: %q", ErrUnknownCodec, name)
		}
		o.Codecs = append(o.Codecs, c)
	}
	if len(o.Codecs) == 0 {
		return nil, nil, fmt.Errorf("sipbridge/sdp: offer: %w: empty preference list", ErrNoCommonCodec)
	}
	l.rtcpAttrs(o, l.RTCPMux, true)
	if l.DTMF {
		o.Codecs = append(o.Codecs, Codec{PT: telephoneEventPT, Name: "telephone-event", ClockRate: 8000, Fmtp: "0-16"})
		o.TelephoneEventPT = telephoneEventPT
	}
	if l.SRTP == SRTPRequired {
		// RTP/SAVP with one a=crypto per suite we support, our key in
		// each (RFC 4568 §7.1.1); the answer picks one by its tag.
		if err := l.secureLocal(); err != nil {
			return nil, nil, fmt.Errorf("sipbridge/sdp: offer: %w", err)
		}
		o.Secure = true
		for i, suite := range Suites {
			o.Crypto = append(o.Crypto, Crypto{Tag: uint32(i + 1), Suite: suite, Key: l.Key})
		}
	}
	body, err := s.render(o)
	if err != nil {
		return nil, nil, fmt.Errorf("sipbridge/sdp: offer: %w", err)
	}
	s.offering, s.offered = true, o.Crypto
	return body, o, nil
}

// Answer builds our answer to a parsed offer (RFC 3264 §6.1): the first codec
// of our preference list that the offer has, with the offer's payload type;
// telephone-event if both want it; the direction from AnswerDirection. It
// returns ErrNoCommonCodec when the offer has none of ours.
func (s *Session) Answer(offer *Offer, l Local) ([]byte, *Offer, error) {
	var chosen Codec
	found := false
	for _, name := range l.Codecs {
		if c, ok := offer.Codec(name); ok && c.ClockRate > 0 && !strings.EqualFold(c.Name, "telephone-event") {
			chosen, found = c, true
			break
		}
	}
	if !found {
		return nil, nil, fmt.Errorf("sipbridge/sdp: answer: %w (offered %s, ours %s)", ErrNoCommonCodec, offeredNames(offer), strings.Join(l.Codecs, ","))
	}
	a := &Offer{
		Addr: l.Addr, Port: l.Port, PTime: l.PTime, TelephoneEventPT: -1,
		Codecs:    []Codec{chosen},
		Direction: AnswerDirection(offer.Direction, l.Direction),
	}
	if l.DTMF && offer.TelephoneEventPT >= 0 {
		for _, c := range offer.Codecs {
			if int(c.PT) == offer.TelephoneEventPT {
				a.Codecs = append(a.Codecs, c)
			}
		}
		a.TelephoneEventPT = offer.TelephoneEventPT
	}
	// SDES (RFC 4568 §7.1.2): answer in the offer's profile; with SRTP
	// on, take the first a=crypto we can key, its tag and suite, our key.
	c, secure, err := offer.SRTPFor(l.SRTP)
	if err != nil {
		return nil, nil, fmt.Errorf("sipbridge/sdp: answer: %w", err)
	}
	if secure {
		if err := l.secureLocal(); err != nil {
			return nil, nil, fmt.Errorf("sipbridge/sdp: answer: %w", err)
		}
		a.Secure = offer.Secure
		a.Crypto = []Crypto{{Tag: c.Tag, Suite: c.Suite, Key: l.Key}}
	}
	if offer.Port == 0 {
		// A rejected stream is answered rejected (RFC 3264 §6).
		a.Port = 0
	} else {
		// RFC 5761 §5.1.3: rtcp-mux in the answer only when offered.
		l.rtcpAttrs(a, l.RTCPMux && offer.RTCPMux, false)
	}
	body, err := s.render(a)
	if err != nil {
		return nil, nil, fmt.Errorf("sipbridge/sdp: answer: %w", err)
	}
	s.offering, s.offered = false, nil
	return body, a, nil
}

func offeredNames(o *Offer) string {
	names := make([]string, 0, len(o.Codecs))
	for _, c := range o.Codecs {
		if c.Name == "" {
			names = append(names, fmt.Sprint(c.PT))
			continue
		}
		names = append(names, c.Name)
	}
	return strings.Join(names, ",")
}

func offeredSuites(o *Offer) string {
	if len(o.Crypto) == 0 {
		return "no a=crypto"
	}
	names := make([]string, 0, len(o.Crypto))
	for _, c := range o.Crypto {
		names = append(names, string(c.Suite))
	}
	return strings.Join(names, ",")
}
