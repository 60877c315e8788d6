package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/baton-voice/baton/sipbridge/sdp"
)

// legSRTP is the SDES-SRTP state of a SIP leg (RFC 3711, keyed by the
// a=crypto attributes of RFC 4568). Each direction has its own context:
// rx decrypts what the phone sends, with the phone's key from its SDP;
// tx encrypts what we send, with our key from our SDP. A nil context
// means that direction is plain RTP.
//
// rx is used only by readLoop and tx only by the send path (the media
// engine's one caller of WriteFrame/WritePayload, which runs writeEvent
// too), so neither pion context is used by two goroutines at once; a
// re-INVITE swaps the pointers (setSRTP) and the next packet takes the
// new one.
type legSRTP struct {
	rx, tx atomic.Pointer[srtpDir]

	mu  sync.Mutex // guards key and setSRTP's compare-and-swap
	key []byte     // our key-salt, fresh per leg; nil while SRTP is off

	// buffers, so that neither direction allocates per packet
	dec []byte     // readLoop's plaintext
	enc []byte     // the send path's ciphertext
	rh  rtp.Header // readLoop's header scratch
	th  rtp.Header // the send path's header scratch
}

// srtpDir is one direction's context and what it was keyed with. rtcp is
// a second context from the same master key for that direction's SRTCP
// (RFC 3711 §3.4, §4.3.2), used only by the RTCP paths (rtcp.go) under
// their lock, so that RTP and RTCP never share a pion context across
// goroutines.
type srtpDir struct {
	ctx   *srtp.Context
	rtcp  *srtp.Context
	suite sdp.Suite
	key   []byte
}

// srtpReplayWindow is the receive replay window (RFC 3711 §3.3.2: at
// least 64 packets).
const srtpReplayWindow = 128

// initSRTP gives the leg our key when the gateway's policy may use SRTP.
func (l *leg) initSRTP(mode sdp.SRTPMode) error {
	if mode != sdp.SRTPOptional && mode != sdp.SRTPRequired {
		return nil
	}
	key, err := sdp.NewKey()
	if err != nil {
		return fmt.Errorf("gateway: SRTP key: %w", err)
	}
	l.srtp.mu.Lock()
	l.srtp.key = key
	l.srtp.dec = make([]byte, 0, 1500)
	l.srtp.enc = make([]byte, 0, 1500)
	l.srtp.mu.Unlock()
	return nil
}

// srtpKey is our key-salt for the SDP, nil when SRTP is off.
func (l *leg) srtpKey() []byte {
	l.srtp.mu.Lock()
	defer l.srtp.mu.Unlock()
	return l.srtp.key
}

// setSRTP keys the leg from the negotiated a=crypto (the far side's key
// and the suite both sides use), or makes it plain RTP when secure is
// false. A direction whose suite and key are unchanged keeps its context
// (hold and resume keep the rollover counter and the replay window); a
// new key from the phone (a re-INVITE that rekeys, RFC 4568 §7.1.4)
// replaces the receive context.
func (l *leg) setSRTP(far sdp.Crypto, secure bool) error {
	s := &l.srtp
	s.mu.Lock()
	defer s.mu.Unlock()
	if !secure {
		s.rx.Store(nil)
		s.tx.Store(nil)
		l.setSRTCP(nil, nil)
		return nil
	}
	if s.key == nil {
		return fmt.Errorf("gateway: SRTP negotiated but the leg has no key (sip.srtp off)")
	}
	if !far.Usable() {
		return fmt.Errorf("gateway: %w: %s", sdp.ErrNoUsableCrypto, far.Suite)
	}
	if cur := s.rx.Load(); cur == nil || cur.suite != far.Suite || !bytes.Equal(cur.key, far.Key) {
		d, err := newSRTPDir(far.Suite, far.Key, srtp.SRTPReplayProtection(srtpReplayWindow), srtp.SRTCPReplayProtection(srtpReplayWindow))
		if err != nil {
			return err
		}
		s.rx.Store(d)
	}
	if cur := s.tx.Load(); cur == nil || cur.suite != far.Suite {
		d, err := newSRTPDir(far.Suite, s.key)
		if err != nil {
			return err
		}
		s.tx.Store(d)
	}
	l.setSRTCP(s.rx.Load(), s.tx.Load()) // SRTCP from the same keys (rtcp.go)
	return nil
}

func newSRTPDir(suite sdp.Suite, key []byte, opts ...srtp.ContextOption) (*srtpDir, error) {
	var profile srtp.ProtectionProfile
	switch suite {
	case sdp.AESCM128HMACSHA180:
		profile = srtp.ProtectionProfileAes128CmHmacSha1_80
	case sdp.AESCM128HMACSHA132:
		profile = srtp.ProtectionProfileAes128CmHmacSha1_32
	default:
		return nil, fmt.Errorf("gateway: SRTP suite %s: %w", suite, sdp.ErrNoUsableCrypto)
	}
	k := bytes.Clone(key)
	ctx, err := srtp.CreateContext(k[:sdp.MasterKeyLen], k[sdp.MasterKeyLen:], profile, opts...)
	if err != nil {
		return nil, fmt.Errorf("gateway: SRTP context %s: %w", suite, err)
	}
	rctx, err := srtp.CreateContext(k[:sdp.MasterKeyLen], k[sdp.MasterKeyLen:], profile, opts...)
	if err != nil {
		return nil, fmt.Errorf("gateway: SRTCP context %s: %w", suite, err)
	}
	return &srtpDir{ctx: ctx, rtcp: rctx, suite: suite, key: k}, nil
}

// unprotect is readLoop's hook: the plaintext RTP of a packet from the
// phone, the packet itself on a plain leg, or ok false when it is not
// authentic (RFC 3711 §3.3: dropped, counted SRTPAuthFailed) or a replay
// (§3.3.2: dropped, counted SRTPReplayed). Only readLoop calls it.
func (l *leg) unprotect(data []byte) ([]byte, bool) {
	d := l.srtp.rx.Load()
	if d == nil {
		return data, true
	}
	out, err := d.ctx.DecryptRTP(l.srtp.dec[:0], data, &l.srtp.rh)
	if err != nil {
		if isReplay(err) {
			l.stats.SRTPReplayed.Add(1)
		} else {
			l.stats.SRTPAuthFailed.Add(1)
		}
		return nil, false
	}
	l.srtp.dec = out[:0]
	return out, true
}

// isReplay says whether pion refused the packet as already seen (its
// duplicated error is not exported; its text is matched, on the drop
// path only).
func isReplay(err error) bool {
	return !errors.Is(err, srtp.ErrFailedToVerifyAuthTag) && strings.Contains(err.Error(), "duplicated")
}

// protect is the send path's hook: the packet encrypted for the phone,
// or the packet itself on a plain leg. Only the send path calls it.
func (l *leg) protect(pkt []byte) ([]byte, error) {
	d := l.srtp.tx.Load()
	if d == nil {
		return pkt, nil
	}
	out, err := d.ctx.EncryptRTP(l.srtp.enc[:0], pkt, &l.srtp.th)
	if err != nil {
		return nil, fmt.Errorf("gateway: SRTP encrypt: %w", err)
	}
	l.srtp.enc = out[:0]
	return out, nil
}

// srtpSuite is the suite the leg sends with, "" on plain RTP.
func (l *leg) srtpSuite() string {
	if d := l.srtp.tx.Load(); d != nil {
		return string(d.suite)
	}
	return ""
}

// notAcceptable is the reason phrase of a 488 for an SDP refused by the
// SRTP policy or by the codecs, naming which.
func notAcceptable(err error) string {
	switch {
	case errors.Is(err, sdp.ErrSRTPRequired):
		return "Not Acceptable Here: SRTP required"
	case errors.Is(err, sdp.ErrSRTPOff):
		return "Not Acceptable Here: SRTP off"
	case errors.Is(err, sdp.ErrNoUsableCrypto):
		return "Not Acceptable Here: no usable a=crypto"
	}
	return "Not Acceptable Here"
}

// badSDP is the reason phrase of a 400 for an SDP that does not parse.
func badSDP(err error) string {
	if errors.Is(err, sdp.ErrCrypto) {
		return "Bad SDP: a=crypto"
	}
	return "Bad SDP"
}
