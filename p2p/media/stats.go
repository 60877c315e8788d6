package media

import "time"

// Stats is a consistent snapshot of a Session's counters. Counters are
// cumulative over the session's life, across rebinds and source switches.
// Byte counts are UDP payload bytes (whole RTP or SRTP packets).
type Stats struct {
	// PacketsSent and BytesSent count packets handed to the socket.
	PacketsSent uint64
	BytesSent   uint64
	// PacketsReceived and BytesReceived count packets that passed the
	// address, parsing, authentication and payload type checks.
	PacketsReceived uint64
	BytesReceived   uint64

	// Lost is expected minus received packets, from extended sequence
	// numbers (RFC 3550 §6.4.1 and A.3), summed over every source played,
	// never negative.
	Lost uint64
	// Late counts packets that arrived after their playout time (dropped).
	Late uint64
	// Duplicates counts packets whose sequence number (or media time) was
	// already received (dropped).
	Duplicates uint64
	// Reordered counts packets that arrived after a packet with a higher
	// sequence number.
	Reordered uint64

	// FramesPlayed counts received frames written to the sink;
	// FramesConcealed counts frames made up for missing ones (a faded
	// repeat of the last frame, then silence).
	FramesPlayed    uint64
	FramesConcealed uint64

	// WrongSource counts packets from an address that is not allowed.
	WrongSource uint64
	// Latched counts SRTP-authenticated packets from an address that was
	// not allowed yet, which made it an allowed source
	// (Config.LatchAuthenticated).
	Latched uint64
	// ConsentLapses counts times the remote's consent expired (no
	// authenticated packet from its address for Config.ConsentTimeout)
	// and full-rate sending stopped.
	ConsentLapses uint64
	// ConsentProbes counts packets sent to a remote without consent (one
	// per Config.ConsentProbeInterval); NotSentNoConsent counts the frames
	// not sent for want of consent.
	ConsentProbes    uint64
	NotSentNoConsent uint64
	// RemoteConfirmed says whether the current remote has consent: the
	// caller confirmed it (SetRemote) or it proved it receives, and that
	// proof is fresh.
	RemoteConfirmed bool
	// Malformed counts datagrams that are not RTP (RFC 3550 §5.1) or are
	// too large for the receive buffer.
	Malformed uint64
	// AuthFailed counts SRTP packets whose authentication tag did not
	// verify (RFC 3711 §3.3, step 5).
	AuthFailed uint64
	// Replayed counts SRTP packets refused by the replay list (RFC 3711
	// §3.3.2): an index already seen or older than the window.
	Replayed uint64
	// WrongPayloadType counts authenticated packets of another payload
	// type than the codec's.
	WrongPayloadType uint64

	// SourceSwitches counts switches of playout to a new SSRC
	// (RFC 3550 §8.2); StaleSource counts packets of a replaced SSRC
	// dropped while the new one is active.
	SourceSwitches uint64
	StaleSource    uint64
	// Resyncs counts playout re-anchors after a timestamp discontinuity of
	// the current source.
	Resyncs uint64

	// SendErrors counts frames that could not be encoded, encrypted or
	// written; SourceErrors, SinkErrors and DecodeErrors count failures of
	// the audio source, the audio sink and the codec's decoder.
	SendErrors   uint64
	SourceErrors uint64
	SinkErrors   uint64
	DecodeErrors uint64

	// PayloadsSent counts frames sent as an audio.PayloadSource gave them,
	// already encoded (no encode); PayloadsPlayed counts received frames
	// an audio.PayloadSink took still encoded (no decode). Both stay zero
	// for plain PCM sources and sinks.
	PayloadsSent   uint64
	PayloadsPlayed uint64

	// Jitter is the interarrival jitter of the current source
	// (RFC 3550 §6.4.1, A.8).
	Jitter time.Duration
	// Rebinds counts successful Rebind calls.
	Rebinds uint64
	// FirstPacket and LastPacket are the arrival times of the first and the
	// latest accepted packet; zero before any.
	FirstPacket time.Time
	LastPacket  time.Time
	// LongestPlayoutGap is the longest run of concealed frames between two
	// received frames.
	LongestPlayoutGap time.Duration
	// RemoteSSRC is the SSRC being played; 0 before any packet.
	RemoteSSRC uint32
}
