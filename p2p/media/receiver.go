package media

import (
	"errors"
	"fmt"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// receiveVerdict is what happened to one datagram from an allowed address.
type receiveVerdict uint8

const (
	verdictUnknown receiveVerdict = iota
	verdictAccepted
	verdictMalformed
	verdictAuthFailed
	verdictReplayed
	verdictWrongPayloadType
	verdictDuplicate
	verdictLate
	verdictStaleSource
)

func (v receiveVerdict) String() string {
	switch v {
	case verdictAccepted:
		return "accepted"
	case verdictMalformed:
		return "malformed"
	case verdictAuthFailed:
		return "auth-failed"
	case verdictReplayed:
		return "replayed"
	case verdictWrongPayloadType:
		return "wrong-payload-type"
	case verdictDuplicate:
		return "duplicate"
	case verdictLate:
		return "late"
	case verdictStaleSource:
		return "stale-source"
	default:
		return "unknown"
	}
}

// authentic says whether the packet passed every check up to and
// including SRTP authentication (RFC 3711 §3.3): whatever the jitter
// buffer then did with it, it came from a holder of the peer's key.
func (v receiveVerdict) authentic() bool {
	switch v {
	case verdictAccepted, verdictDuplicate, verdictLate, verdictStaleSource:
		return true
	}
	return false
}

// Cryptex (RFC 9335) header extension profiles. Baton never negotiates
// cryptex, and pion refuses such packets before authenticating them, so
// they are classified as malformed up front.
const (
	cryptexProfileOneByte = 0xC0DE
	cryptexProfileTwoByte = 0xC2DE
)

// receiver checks, authenticates and classifies incoming datagrams and
// feeds the jitter buffer. The session's timeline goroutine owns it; the
// per-packet path allocates nothing.
type receiver struct {
	pt   uint8
	srtp *srtp.Context
	hdr  rtp.Header
	pkt  rtp.Packet
	jb   *jitterBuffer
	// onSwitch is Config.OnSourceSwitch.
	onSwitch func(ssrc uint32, returned bool)

	packets, bytes                        uint64
	malformed, authFailed, replayed, wrPT uint64
	first, last                           time.Time
}

func newReceiver(s settings, jb *jitterBuffer) (*receiver, error) {
	r := &receiver{pt: s.desc.PayloadType, jb: jb, onSwitch: s.OnSourceSwitch}
	// Capacity for the most CSRCs a header can carry (RFC 3550 §5.1: CC is
	// 4 bits) so that parsing hostile headers does not allocate.
	r.hdr.CSRC = make([]uint32, 0, 15)
	r.hdr.Extensions = make([]rtp.Extension, 0, 16)
	r.pkt.CSRC = make([]uint32, 0, 15)
	r.pkt.Extensions = make([]rtp.Extension, 0, 16)
	if s.RecvKeys != nil {
		// Replay protection (RFC 3711 §3.3.2) is off by default in pion.
		ctx, err := srtp.CreateContext(s.RecvKeys.MasterKey[:], s.RecvKeys.MasterSalt[:], srtpProfile,
			srtp.SRTPReplayProtection(srtpReplayWindow))
		if err != nil {
			return nil, fmt.Errorf("media: receiver: srtp context: %w", err)
		}
		if s.RemoteROC != nil {
			ctx.SetROC(s.RemoteROC.SSRC, s.RemoteROC.ROC)
		}
		r.srtp = ctx
	}
	return r, nil
}

// roc returns the SRTP roll-over counter of ssrc's stream, as far as this
// receiver has followed it.
func (r *receiver) roc(ssrc uint32) (uint32, bool) {
	if r.srtp == nil {
		return 0, false
	}
	return r.srtp.ROC(ssrc)
}

// uncount takes back the counter that receive bumped for a refused
// packet: the session counts it elsewhere (a wrong source).
func (r *receiver) uncount(v receiveVerdict) {
	switch v {
	case verdictMalformed:
		r.malformed--
	case verdictAuthFailed:
		r.authFailed--
	case verdictReplayed:
		r.replayed--
	case verdictWrongPayloadType:
		r.wrPT--
	}
}

// receive processes one datagram that came from an allowed address. b is
// decrypted in place.
func (r *receiver) receive(b []byte, at time.Time) receiveVerdict {
	size := len(b)
	hlen, err := r.hdr.Unmarshal(b)
	if err != nil || r.hdr.Version != 2 {
		r.malformed++
		return verdictMalformed
	}
	if r.srtp != nil {
		if r.hdr.Extension && (r.hdr.ExtensionProfile == cryptexProfileOneByte ||
			r.hdr.ExtensionProfile == cryptexProfileTwoByte) {
			r.malformed++
			return verdictMalformed
		}
		if size < hlen+srtpTagLen {
			r.malformed++
			return verdictMalformed
		}
		plain, err := r.srtp.DecryptRTP(b[:0], b, &r.hdr)
		switch {
		case errors.Is(err, srtp.ErrFailedToVerifyAuthTag):
			r.authFailed++
			return verdictAuthFailed
		case err != nil:
			// With the checks above, the only other failure pion reports
			// is the replay list refusing the index (RFC 3711 §3.3.2).
			r.replayed++
			return verdictReplayed
		}
		b = plain
	}
	// Parse again for the payload boundaries (padding, RFC 3550 §5.1).
	if err := r.pkt.Unmarshal(b); err != nil {
		r.malformed++
		return verdictMalformed
	}
	if r.pkt.PayloadType != r.pt {
		r.wrPT++
		return verdictWrongPayloadType
	}
	r.packets++
	r.bytes += uint64(size)
	if r.first.IsZero() {
		r.first = at
	}
	r.last = at
	switches := r.jb.st.sourceSwitches
	res := r.jb.push(r.pkt.SSRC, r.pkt.SequenceNumber, r.pkt.Timestamp, r.pkt.Payload, at)
	if r.onSwitch != nil && r.jb.st.sourceSwitches != switches {
		r.onSwitch(r.pkt.SSRC, r.jb.switchedBack)
	}
	switch res {
	case pushDuplicate:
		return verdictDuplicate
	case pushLate:
		return verdictLate
	case pushStaleSource:
		return verdictStaleSource
	default:
		return verdictAccepted
	}
}
