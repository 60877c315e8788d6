package audio

import (
	"strings"

	"github.com/baton-voice/baton/codecs"
)

// PayloadSource is a Source that can also hand over its audio already
// encoded: media at RTP-payload level as well as PCM. The media engine of
// a call asks it first, each frame; when it gives a frame, that frame is
// sent as the packet's payload without an encode (the engine still owns
// pacing, sequence numbers, timestamps, the marker bit and SRTP). When it
// does not, the engine reads the frame with ReadFrame and encodes it as
// usual, so a PayloadSource whose codec differs from the call's is an
// ordinary Source (the transcoding path).
//
// A gateway's SIP leg is the user: a phone that speaks the call's codec
// is relayed without decoding.
type PayloadSource interface {
	Source
	// ReadPayload writes the next frame of samples samples (one packet
	// time), encoded with codec, into dst and returns its length. ok is
	// false when the source has no such frame: its audio is in another
	// codec, or it has none at the moment (prebuffering, an underrun); the
	// caller then calls ReadFrame for this frame instead. An error also
	// means no frame. It must not allocate on the steady path.
	ReadPayload(codec codecs.Codec, samples int, dst []byte) (n int, ok bool, err error)
}

// PayloadSink is a Sink that can also take the received audio still
// encoded. The media engine offers each received frame to WritePayload
// first; when the sink takes it (ok), the frame is not decoded. Frames
// made up for lost packets (concealment) and frames the sink refuses
// arrive through WriteFrame as PCM, so the sink's timeline stays the
// call's timeline either way.
type PayloadSink interface {
	Sink
	// WritePayload takes one received frame of samples samples, encoded
	// with codec. payload is reused after it returns. ok false means the
	// sink cannot use frames in codec (the caller decodes and calls
	// WriteFrame instead). It must not allocate on the steady path.
	WritePayload(codec codecs.Codec, samples int, payload []byte) (ok bool, err error)
}

// SameCodec says whether frames encoded with a can be decoded with b: the
// same encoding name (case-insensitive, RFC 4566 §6), clock rate, sample
// rate, channels and format parameters. Payload type numbers may differ:
// they only name the codec on one RTP stream.
func SameCodec(a, b codecs.Codec) bool {
	if a == nil || b == nil {
		return false
	}
	da, db := a.Descriptor(), b.Descriptor()
	return strings.EqualFold(da.Name, db.Name) && da.ClockRate == db.ClockRate && da.SampleRate == db.SampleRate &&
		da.Channels == db.Channels && da.Fmtp == db.Fmtp
}

// Poller is a Source whose input arrives on a socket of its own that the
// media engine's timeline can read for it: the engine calls Poll once per
// packet time, before it asks for the frame, whether it sends that frame
// or not. A source that is polled need not wake a goroutine of its own for
// every packet it receives (a gateway's SIP leg: the phone's packets are
// taken on the call's tick). Poll must not block. A source must not rely
// on being polled: the engine stops when its call ends or moves on.
type Poller interface {
	Poll()
}
