package media

import (
	"errors"
	"fmt"
	"math"
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

	// handed is Config.RemoteROC while no packet of its SSRC has
	// authenticated: each such packet is decrypted under the counter
	// estimated from it (RFC 3711 §3.3.1), since the stream may have
	// wrapped after the counter was read at the old session, and if that
	// fails under the next one (the handed index may be older than the
	// stream by more than half the sequence space).
	handed    ROC
	handedSet bool
	// retries counts second authentication checks of packets of the
	// handed stream (at most one per packet), for tests.
	retries uint64
	// idx follows the packet index (ROC, s_l) of the last few SSRCs
	// heard, so that RemoteROC can hand a stream on with both.
	idx     [recentSources]streamIndex
	idxNext int
}

// streamIndex is one SSRC's SRTP packet index: its roll-over counter and
// the highest sequence number authenticated under it (RFC 3711 §3.3.1).
type streamIndex struct {
	ssrc uint32
	roc  uint32
	seq  uint16
	set  bool
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
			r.handed, r.handedSet = *s.RemoteROC, true
		}
		r.srtp = ctx
	}
	return r, nil
}

// index returns the SRTP packet index of ssrc's stream as far as this
// receiver has followed it: the counter and the highest sequence number
// authenticated. Before any packet of the handed stream authenticated,
// it is the counter this session was given (Config.RemoteROC), so a
// session that heard nothing passes on what it knew rather than nothing.
func (r *receiver) index(ssrc uint32) (ROC, bool) {
	if r.srtp == nil {
		return ROC{}, false
	}
	for _, e := range r.idx {
		if e.set && e.ssrc == ssrc {
			return ROC{SSRC: ssrc, ROC: e.roc, Seq: e.seq, HasSeq: true}, true
		}
	}
	if r.handedSet && r.handed.SSRC == ssrc {
		return r.handed, true
	}
	if v, ok := r.srtp.ROC(ssrc); ok {
		return ROC{SSRC: ssrc, ROC: v}, true
	}
	return ROC{}, false
}

// handedROC is the counter this session was given, while no packet of its
// stream has authenticated.
func (r *receiver) handedROC() (ROC, bool) {
	return r.handed, r.handedSet && r.srtp != nil
}

// follow records that a packet of ssrc with sequence number seq
// authenticated: the stream's index moves on if it is the highest yet.
func (r *receiver) follow(ssrc uint32, seq uint16) {
	for i := range r.idx {
		e := &r.idx[i]
		if !e.set || e.ssrc != ssrc {
			continue
		}
		v := estimateROC(e.roc, e.seq, seq)
		if uint64(v)<<16|uint64(seq) > uint64(e.roc)<<16|uint64(e.seq) {
			e.roc, e.seq = v, seq
		}
		return
	}
	// A stream not followed yet: its first authenticated packet. pion has
	// just decrypted it, so its counter is the packet's (or, for a stream
	// evicted from idx and heard again, the highest pion saw).
	v, _ := r.srtp.ROC(ssrc)
	r.idx[r.idxNext] = streamIndex{ssrc: ssrc, roc: v, seq: seq, set: true}
	r.idxNext = (r.idxNext + 1) % len(r.idx)
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
		handed := r.handedSet && r.hdr.SSRC == r.handed.SSRC
		var roc uint32
		if handed {
			// The first packet of a stream taken over: its counter from
			// the handed index, as the RFC estimates it.
			roc = r.handed.ROC
			if r.handed.HasSeq {
				roc = estimateROC(r.handed.ROC, r.handed.Seq, r.hdr.SequenceNumber)
			}
			r.srtp.SetROC(r.hdr.SSRC, roc)
		}
		plain, err := r.srtp.DecryptRTP(b[:0], b, &r.hdr)
		if handed && roc < math.MaxUint32 && errors.Is(err, srtp.ErrFailedToVerifyAuthTag) {
			// The handed index is a lower bound: it was read at the old
			// session (or passed on by a device that never heard the
			// stream) while the stream ran on, and may be older than the
			// stream by more than half the sequence space, the most the
			// estimate can tell. One more wrap is tried, so a stream
			// still authenticates after it; a forged packet costs two
			// authentication checks, and only until the first of the
			// stream authenticates. Authentication decides (the counter
			// is part of the authenticated index, RFC 3711 §4.2), and the
			// replay list is pion's, checked on the index tried, so
			// neither is weakened. pion verifies the tag before it
			// writes b.
			r.srtp.SetROC(r.hdr.SSRC, roc+1)
			r.retries++
			plain, err = r.srtp.DecryptRTP(b[:0], b, &r.hdr)
		}
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
		if handed {
			r.handedSet = false // pion follows the stream from here
		}
		r.follow(r.hdr.SSRC, r.hdr.SequenceNumber)
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
