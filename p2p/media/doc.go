// Package media is the direct RTP media layer of a Baton P2P endpoint: one
// Session per call carries two-way audio over UDP (RFC 3550) with pion/rtp,
// protected with SRTP (RFC 3711, AES_CM_128_HMAC_SHA1_80) through
// pion/srtp, played out through a fixed-delay jitter buffer, and movable to a
// new local address mid-call (Rebind; handoff steps 9-12 and mobility).
//
// A Session never crashes or ends the call on bad input: packets from
// addresses that are not allowed, garbage, packets failing SRTP
// authentication or replay checks, and packets of the wrong payload type are
// dropped and counted in Stats.
//
// When an authenticated packet with a new SSRC arrives from an allowed
// address, playout switches to that source from that packet on (RFC 3550
// §8.2): the far party of a handoff plays exactly one of the two devices.
//
// The per-packet paths (building and sending, receiving and playing)
// allocate nothing in the steady state.
//
// RTCP (RFC 3550 §6) is not implemented: Stats holds the reception
// statistics locally. RTCP or SRTCP packets multiplexed on the port
// (RFC 5761) are counted as WrongPayloadType (RTP) or AuthFailed (SRTP).
package media
