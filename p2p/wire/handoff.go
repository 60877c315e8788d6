package wire

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Handoff message types (3xx): the P2P handoff of docs/handoff.md, claim 1
// of US 8,380,859 B2. A is the device taking the call, B the device that has
// it, C the far party. Every one of them travels directly between two
// endpoints over mutually authenticated TLS.
const (
	TypeSessionQuery     Type = 300 // A -> B, step 2
	TypeSessionList      Type = 301 // B -> A, step 3
	TypeStopAudio        Type = 302 // A -> B, step 5
	TypeStopAck          Type = 303 // B -> A
	TypeResume           Type = 304 // A -> B, rollback
	TypeResumeAck        Type = 305 // B -> A
	TypeRelease          Type = 306 // A -> B, step 12: B lets go silently
	TypeReestablish      Type = 310 // A -> C, step 7
	TypeReestablishAck   Type = 311 // C -> A
	TypeNewAddress       Type = 312 // A -> C, step 11 (and mobility)
	TypeNewAddressAck    Type = 313 // C -> A
	TypeWithdraw         Type = 314 // A -> C, rollback after step 7: go back to B
	MaxSessions               = 16
	GrantNonceLen             = 16
	MaxGrantSignatureLen      = 160
	DirectionSendRecv         = "sendrecv"
)

// SessionQuery asks B which sessions it has (step 2). The asker's identity
// is its certificate's.
type SessionQuery struct {
	QueryID string `json:"query_id"`
}

// Grant is B's signed permission for A to take over call CallID with C.
// C verifies the signature with the public key of B's certificate, which
// it saw when its call with B was set up, and refuses a grant that is
// expired, for another call, another peer, another device, or replayed
// (the nonce is single-use).
type Grant struct {
	CallID       string `json:"call_id"`
	From         string `json:"from"` // B, the signer
	To           string `json:"to"`   // A, the device allowed to take over
	Peer         string `json:"peer"` // C
	NotAfterUnix int64  `json:"not_after_unix"`
	Nonce        []byte `json:"nonce"`
	Signature    []byte `json:"signature"` // ECDSA/Ed25519 over SigningBytes
}

// SigningBytes is the exact byte string B signs and C verifies: a version
// label and the fields, one per line, so no two grants share it.
func (g *Grant) SigningBytes() []byte {
	var b strings.Builder
	b.WriteString("baton-grant-v1\n")
	for _, s := range []string{g.CallID, g.From, g.To, g.Peer, strconv.FormatInt(g.NotAfterUnix, 10)} {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	b.Write(g.Nonce)
	return []byte(b.String())
}

func (g *Grant) validate(t Type) error {
	if err := checkCallID(t, g.CallID); err != nil {
		return err
	}
	for _, id := range []string{g.From, g.To, g.Peer} {
		if !ValidIdentity(id) {
			return malformed(t, "grant identity %q: want user/device", id)
		}
	}
	if g.NotAfterUnix <= 0 {
		return malformed(t, "grant not_after_unix missing")
	}
	if len(g.Nonce) != GrantNonceLen {
		return malformed(t, "grant nonce is %d bytes, want %d", len(g.Nonce), GrantNonceLen)
	}
	if len(g.Signature) == 0 || len(g.Signature) > MaxGrantSignatureLen {
		return malformed(t, "grant signature must be 1-%d bytes", MaxGrantSignatureLen)
	}
	return nil
}

// SessionParams describes one of B's active sessions: everything A needs to
// reach C and take the session over (step 3).
type SessionParams struct {
	CallID     string `json:"call_id"`
	Peer       string `json:"peer"`        // C, user/device
	Direction  string `json:"direction"`   // "sendrecv": two-way audio
	PeerSignal string `json:"peer_signal"` // C's signaling address
	PeerMedia  string `json:"peer_media"`  // where C receives RTP
	Codec      string `json:"codec"`
	PtimeMS    int    `json:"ptime_ms"`
	PeerSSRC   uint32 `json:"peer_ssrc"`          // C's SSRC
	PeerROC    uint32 `json:"peer_roc,omitempty"` // SRTP roll-over counter of C's stream (RFC 3711 §3.3.1)
	LocalSSRC  uint32 `json:"local_ssrc"`         // B's SSRC: A must pick another (RFC 3550 §8.2)
	SendKey    []byte `json:"send_key,omitempty"` // SRTP key of B's stream to C, which C decrypts with
	RecvKey    []byte `json:"recv_key,omitempty"` // SRTP key of C's stream
	Grant      Grant  `json:"grant"`
	// PeerSeq is the highest sequence number of C's stream authenticated
	// under PeerROC (RFC 3711 §3.3.1's s_l), nil if B does not say (an
	// endpoint older than this field). C's stream keeps running during
	// the handoff: with it, A tells whether C's sequence number wrapped
	// since B read the counter; without it, a wrap in that time leaves A
	// unable to authenticate C's stream.
	PeerSeq *uint16 `json:"peer_seq,omitempty"`
	// Initiator says which side placed the call: InitiatorSelf (B's
	// user, so the dialog's local side: RFC 4235 "initiator"),
	// InitiatorPeer (C), or "" when B does not know (an endpoint older
	// than this field). A pulled call keeps what the list it was pulled
	// with said.
	Initiator string `json:"initiator,omitempty"`
}

// Values of SessionParams.Initiator.
const (
	InitiatorSelf = "self"
	InitiatorPeer = "peer"
)

// SessionList answers a SessionQuery: B's sessions that A may take.
type SessionList struct {
	QueryID  string          `json:"query_id"`
	Sessions []SessionParams `json:"sessions"`
}

// StopAudio tells B to stop sending audio to C in call CallID (step 5).
type StopAudio struct {
	CallID string `json:"call_id"`
}

// StopAck confirms StopAudio. B says where C's stream is at that moment
// (step 5): its SSRC, SRTP roll-over counter and highest sequence number
// authenticated (RFC 3711 §3.3.1's index), fresher than the session
// parameters of step 3 (B may not have heard C yet when it answered the
// query, and C's stream runs on meanwhile). PeerSeq nil: B does not say
// (an endpoint older than these fields, plain RTP, or B has not heard
// C), and A keeps what step 3 said.
type StopAck struct {
	CallID   string  `json:"call_id"`
	PeerSSRC uint32  `json:"peer_ssrc,omitempty"`
	PeerROC  uint32  `json:"peer_roc,omitempty"`
	PeerSeq  *uint16 `json:"peer_seq,omitempty"`
}

// Resume tells B to send audio to C again: the handoff rolled back.
type Resume struct {
	CallID string `json:"call_id"`
	Reason string `json:"reason,omitempty"`
}

// ResumeAck confirms Resume.
type ResumeAck struct {
	CallID string `json:"call_id"`
}

// Release tells B the call is now on A: B drops its media and the call
// without any termination signal to C (step 12).
type Release struct {
	CallID string `json:"call_id"`
}

// Reestablish asks C, out of band, to take A as its peer for CallID (step
// 7). Media is A's current (provisional) RTP address and SSRC; A's stream
// is encrypted with the key C already has for B's, so no new key travels.
type Reestablish struct {
	CallID     string `json:"call_id"`
	SignalAddr string `json:"signal_addr"` // where A accepts signaling
	Media      Media  `json:"media"`
	Grant      Grant  `json:"grant"`
}

// ReestablishAck accepts a Reestablish. C says where its own stream is
// (RFC 3711 §3.3.1's index: SSRC, roll-over counter, sequence number of
// the last packet sent) as it turns that stream to A: A joins it mid-way
// and must know its counter (§3.3.1: "receivers joining an on-going
// session MUST be given the current ROC value"), and C, the sender, is
// the one that knows it, even when B never heard C. PeerSeq nil: C does
// not say (an endpoint older than these fields, or plain RTP).
type ReestablishAck struct {
	CallID   string  `json:"call_id"`
	PeerSSRC uint32  `json:"peer_ssrc,omitempty"`
	PeerROC  uint32  `json:"peer_roc,omitempty"`
	PeerSeq  *uint16 `json:"peer_seq,omitempty"`
}

// NewAddress tells the far party that the sender's media moved (step 11,
// and mobility).
type NewAddress struct {
	CallID string `json:"call_id"`
	Media  Media  `json:"media"`
}

// NewAddressAck confirms NewAddress.
type NewAddressAck struct {
	CallID string `json:"call_id"`
}

// Withdraw tells C, on the connection A re-established the call on (step
// 7), that A gave the handoff up after C accepted it (A rolled back: B
// resumes): C goes back to B as its peer, at B's address, even if it
// handled A's new-address first (it read it late, after A's rollback).
type Withdraw struct {
	CallID string `json:"call_id"`
	Reason string `json:"reason,omitempty"`
}

func (*SessionQuery) Type() Type   { return TypeSessionQuery }
func (*SessionList) Type() Type    { return TypeSessionList }
func (*StopAudio) Type() Type      { return TypeStopAudio }
func (*StopAck) Type() Type        { return TypeStopAck }
func (*Resume) Type() Type         { return TypeResume }
func (*ResumeAck) Type() Type      { return TypeResumeAck }
func (*Release) Type() Type        { return TypeRelease }
func (*Reestablish) Type() Type    { return TypeReestablish }
func (*ReestablishAck) Type() Type { return TypeReestablishAck }
func (*NewAddress) Type() Type     { return TypeNewAddress }
func (*NewAddressAck) Type() Type  { return TypeNewAddressAck }
func (*Withdraw) Type() Type       { return TypeWithdraw }

// newHandoff returns an empty handoff message of type t, or nil.
func newHandoff(t Type) Message {
	switch t {
	case TypeSessionQuery:
		return &SessionQuery{}
	case TypeSessionList:
		return &SessionList{}
	case TypeStopAudio:
		return &StopAudio{}
	case TypeStopAck:
		return &StopAck{}
	case TypeResume:
		return &Resume{}
	case TypeResumeAck:
		return &ResumeAck{}
	case TypeRelease:
		return &Release{}
	case TypeReestablish:
		return &Reestablish{}
	case TypeReestablishAck:
		return &ReestablishAck{}
	case TypeNewAddress:
		return &NewAddress{}
	case TypeNewAddressAck:
		return &NewAddressAck{}
	case TypeWithdraw:
		return &Withdraw{}
	}
	return nil
}

// Validate implements Message.
func (m *SessionQuery) Validate() error { return checkCallID(m.Type(), m.QueryID) }

// Validate implements Message.
func (m *SessionList) Validate() error {
	t := m.Type()
	if err := checkCallID(t, m.QueryID); err != nil {
		return err
	}
	if len(m.Sessions) > MaxSessions {
		return malformed(t, "%d sessions, limit %d", len(m.Sessions), MaxSessions)
	}
	for i := range m.Sessions {
		s := &m.Sessions[i]
		if err := checkCallID(t, s.CallID); err != nil {
			return err
		}
		if !ValidIdentity(s.Peer) {
			return malformed(t, "session peer %q: want user/device", s.Peer)
		}
		if s.Direction != DirectionSendRecv {
			return malformed(t, "session direction %q: want %s", s.Direction, DirectionSendRecv)
		}
		if s.Initiator != "" && s.Initiator != InitiatorSelf && s.Initiator != InitiatorPeer {
			return malformed(t, "session initiator %q: want %s, %s or none", s.Initiator, InitiatorSelf, InitiatorPeer)
		}
		if err := checkAddr(t, "peer_signal", s.PeerSignal, false); err != nil {
			return err
		}
		if err := checkAddr(t, "peer_media", s.PeerMedia, false); err != nil {
			return err
		}
		if s.Codec == "" || len(s.Codec) > MaxNameLen || !utf8.ValidString(s.Codec) {
			return malformed(t, "session codec %q invalid", s.Codec)
		}
		if s.PtimeMS < 10 || s.PtimeMS > 60 || s.PtimeMS%10 != 0 {
			return malformed(t, "session ptime_ms %d: want 10..60 in steps of 10", s.PtimeMS)
		}
		if (s.SendKey == nil) != (s.RecvKey == nil) {
			return malformed(t, "session keys: both or neither")
		}
		if s.SendKey != nil && (len(s.SendKey) != SRTPKeyLen || len(s.RecvKey) != SRTPKeyLen) {
			return malformed(t, "session keys must be %d bytes", SRTPKeyLen)
		}
		if err := s.Grant.validate(t); err != nil {
			return err
		}
	}
	return nil
}

// Validate implements Message.
func (m *StopAudio) Validate() error { return checkCallID(m.Type(), m.CallID) }

// Validate implements Message.
func (m *StopAck) Validate() error {
	t := m.Type()
	if err := checkCallID(t, m.CallID); err != nil {
		return err
	}
	return checkStreamIndex(t, m.PeerSSRC, m.PeerROC, m.PeerSeq)
}

// Validate implements Message.
func (m *Resume) Validate() error {
	if err := checkCallID(m.Type(), m.CallID); err != nil {
		return err
	}
	return checkReason(m.Type(), m.Reason)
}

// Validate implements Message.
func (m *ResumeAck) Validate() error { return checkCallID(m.Type(), m.CallID) }

// Validate implements Message.
func (m *Release) Validate() error { return checkCallID(m.Type(), m.CallID) }

// Validate implements Message.
func (m *Reestablish) Validate() error {
	t := m.Type()
	if err := checkCallID(t, m.CallID); err != nil {
		return err
	}
	if err := checkAddr(t, "signal_addr", m.SignalAddr, false); err != nil {
		return err
	}
	if err := checkMedia(t, m.Media); err != nil {
		return err
	}
	if m.Media.SRTPKey != nil {
		return malformed(t, "media.srtp_key must be absent: the stream keeps B's key")
	}
	return m.Grant.validate(t)
}

// Validate implements Message.
func (m *ReestablishAck) Validate() error {
	t := m.Type()
	if err := checkCallID(t, m.CallID); err != nil {
		return err
	}
	return checkStreamIndex(t, m.PeerSSRC, m.PeerROC, m.PeerSeq)
}

// checkStreamIndex: a stream index travels whole (peer_ssrc, peer_roc,
// peer_seq) or not at all.
func checkStreamIndex(t Type, ssrc, roc uint32, seq *uint16) error {
	if seq == nil && (ssrc != 0 || roc != 0) {
		return malformed(t, "peer_ssrc and peer_roc without peer_seq: the stream's index needs all three")
	}
	return nil
}

// Validate implements Message.
func (m *NewAddress) Validate() error {
	t := m.Type()
	if err := checkCallID(t, m.CallID); err != nil {
		return err
	}
	if err := checkMedia(t, m.Media); err != nil {
		return err
	}
	if m.Media.SRTPKey != nil {
		return malformed(t, "media.srtp_key must be absent: keys stay valid across a move")
	}
	return nil
}

// Validate implements Message.
func (m *NewAddressAck) Validate() error { return checkCallID(m.Type(), m.CallID) }

// Validate implements Message.
func (m *Withdraw) Validate() error {
	if err := checkCallID(m.Type(), m.CallID); err != nil {
		return err
	}
	return checkReason(m.Type(), m.Reason)
}
