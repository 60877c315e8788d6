package media

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// srtpProfile is the only SRTP protection profile Baton uses: AES-128 in
// counter mode with an 80-bit HMAC-SHA1 tag, RFC 3711's default (§8.2).
const srtpProfile = srtp.ProtectionProfileAes128CmHmacSha1_80

// srtpReplayWindow is the replay list size, RFC 3711 §3.3.2's minimum of 64.
const srtpReplayWindow = 64

// sender builds this endpoint's RTP packets. The session's timeline
// goroutine owns it. Every buffer is allocated once: next allocates nothing.
type sender struct {
	codec   codecs.Codec   // the call's codec, asked of an audio.PayloadSource
	enc     codecs.Encoder // this call's encoder state; closed by engine.close
	samples int            // samples per frame
	step    uint32
	pcm     []int16
	payload []byte
	pkt     rtp.Packet // header reused; seq/timestamp advance in place
	buf     []byte     // marshalled packet, encrypted in place for SRTP
	srtp    *srtp.Context
	encHdr  rtp.Header // scratch header for EncryptRTP
	// markNext sets the marker bit on the next packet: the first packet,
	// and the first after a pause (RFC 3551 §4.1: first packet of a
	// talkspurt).
	markNext bool

	sourceErrors  uint64
	lastSourceErr error
	// payloads counts frames an audio.PayloadSource gave already encoded
	// (sent without an encode).
	payloads uint64
}

func newSender(s settings, ssrc uint32) (*sender, error) {
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, fmt.Errorf("media: sender: %w", err)
	}
	enc, err := codecs.NewEncoder(s.Codec)
	if err != nil {
		return nil, fmt.Errorf("media: sender: %s encoder: %w", s.desc.Name, err)
	}
	snd := &sender{
		codec:    s.Codec,
		enc:      enc,
		samples:  s.samplesPerFrame,
		step:     s.step,
		pcm:      make([]int16, s.samplesPerFrame),
		payload:  make([]byte, s.payloadCap),
		buf:      make([]byte, rtpHeaderLen+s.payloadCap+srtpTagLen),
		markNext: true,
	}
	// RFC 3550 §5.1: the initial sequence number and timestamp are random,
	// to make known-plaintext attacks on encryption harder.
	snd.pkt.Header = rtp.Header{
		Version:        2,
		PayloadType:    s.desc.PayloadType,
		SequenceNumber: binary.BigEndian.Uint16(r[0:2]),
		Timestamp:      binary.BigEndian.Uint32(r[2:6]),
		SSRC:           ssrc,
	}
	if s.FirstSequence != nil {
		snd.pkt.SequenceNumber = *s.FirstSequence
	}
	if s.SendKeys != nil {
		ctx, err := srtp.CreateContext(s.SendKeys.MasterKey[:], s.SendKeys.MasterSalt[:], srtpProfile)
		if err != nil {
			_ = enc.Close()
			return nil, fmt.Errorf("media: sender: srtp context: %w", err)
		}
		snd.srtp = ctx
	}
	return snd, nil
}

// next reads one frame from src (nil: silence), encodes it and returns the
// packet to send, which is valid until the next call. A source that is an
// audio.PayloadSource is asked for the frame already encoded in the call's
// codec first; only when it has none is the frame read as PCM and encoded.
// A source error sends silence for that frame and is counted. On error no
// packet exists and the timestamp still advances, as for a pause.
func (s *sender) next(src audio.Source) ([]byte, error) {
	n, ok := s.readPayload(src)
	if !ok {
		s.readPCM(src)
		var err error
		n, err = s.enc.Encode(s.payload, s.pcm)
		if err != nil {
			s.skip(1)
			return nil, fmt.Errorf("media: encode: %w", err)
		}
	}
	return s.packet(n)
}

// readPCM reads the next frame to encode into s.pcm; a failing source
// gives silence, counted.
func (s *sender) readPCM(src audio.Source) {
	if src == nil {
		return
	}
	if err := src.ReadFrame(s.pcm); err != nil {
		clear(s.pcm)
		s.sourceErrors++
		s.lastSourceErr = err
	}
}

// packet builds the packet of the n-byte payload in s.payload.
func (s *sender) packet(n int) ([]byte, error) {
	s.pkt.Header.Marker = s.markNext
	s.pkt.Payload = s.payload[:n]
	m, err := s.pkt.MarshalTo(s.buf)
	if err != nil {
		s.skip(1)
		return nil, fmt.Errorf("media: marshal rtp: %w", err)
	}
	out := s.buf[:m]
	if s.srtp != nil {
		// Encrypt in place: s.buf has room for the tag (RFC 3711 §3.1).
		out, err = s.srtp.EncryptRTP(s.buf[:0], out, &s.encHdr)
		if err != nil {
			s.skip(1)
			return nil, fmt.Errorf("media: srtp encrypt: %w", err)
		}
	}
	s.pkt.Header.SequenceNumber++
	s.pkt.Header.Timestamp += s.step
	s.markNext = false
	return out, nil
}

// readPayload asks a PayloadSource for the next frame encoded in the
// call's codec. A failing source is counted like a failing ReadFrame and
// then read as PCM.
func (s *sender) readPayload(src audio.Source) (int, bool) {
	ps, ok := src.(audio.PayloadSource)
	if !ok {
		return 0, false
	}
	n, ok, err := ps.ReadPayload(s.codec, s.samples, s.payload)
	switch {
	case err != nil:
		s.sourceErrors++
		s.lastSourceErr = err
		return 0, false
	case !ok:
		return 0, false
	case n < 0 || n > len(s.payload):
		s.sourceErrors++
		s.lastSourceErr = fmt.Errorf("media: payload source returned %d bytes for a %d-byte buffer", n, len(s.payload))
		return 0, false
	}
	s.payloads++
	return n, true
}

// skip accounts for n frame times in which nothing was sent: the
// timestamp keeps advancing with the sampling clock while the sequence
// number does not (RFC 3550 §5.1), and the next packet carries the marker.
func (s *sender) skip(n uint32) {
	s.pkt.Header.Timestamp += n * s.step
	s.markNext = true
}

// index is the SRTP packet index of the last packet sent (Session.SendIndex).
func (s *sender) index() (ROC, bool) {
	if s.srtp == nil {
		return ROC{}, false
	}
	v, ok := s.srtp.ROC(s.pkt.SSRC)
	if !ok {
		return ROC{}, false
	}
	return ROC{SSRC: s.pkt.SSRC, ROC: v, Seq: s.pkt.SequenceNumber - 1, HasSeq: true}, true
}
