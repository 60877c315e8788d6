// Package sipbridge will be the SIP side of the gateway on emiago/sipgo:
// registrar, B2BUA dialogs, SDP, trunks, dialog-info, Replaces and REFER
// (../shared/DESIGN.md §2 and §3).
//
// What exists: sipbridge/sdp, the RFC 3264 offer/answer mapping on pion/sdp
// (typed Offer, answer by our codec preference with ErrNoCommonCodec, offers,
// o= version incremented on change, hold directions, fuzz target); the
// digest Verifier (HA1 storage, HMAC-signed expiring nonces with stale, nc
// replay refusal, constant-time compare, dummy HA1 for unknown users).
//
// Bindings (contacts per AOR with expiry, OnChange online/offline) exist.
//
// Not implemented yet: the REGISTER handler that uses Bindings, Verifier and
// the FailLimiter (per-source token bucket, which exists and is tested),
// pruning of the nonce-count table and limiter buckets, sipgo listeners, OPTIONS,
// calls (B2BUA), trunks. No SIP is spoken by this build.
package sipbridge
