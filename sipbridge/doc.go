// Package sipbridge holds the SIP-side building blocks the gateway uses:
// sipbridge/sdp, the RFC 3264 offer/answer mapping on pion/sdp (typed
// Offer, answer by our codec preference with ErrNoCommonCodec, offers, o=
// version incremented on change, hold directions, fuzz target); the digest
// Verifier (HA1 storage, HMAC-signed expiring nonces with stale, nc replay
// refusal, constant-time compare, dummy HA1 for unknown users); the
// FailLimiter (per-source token bucket for failed authentication); and
// Bindings (contacts per AOR with expiry, OnChange online/offline).
//
// The REGISTER and INVITE handlers that use them live in package gateway
// today. Not implemented yet: pruning of the nonce-count table and the
// limiter buckets, trunks, dialog-info, Replaces and REFER.
package sipbridge
