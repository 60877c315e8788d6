// Package gateway assembles `baton gateway`: a SIP registrar and B2BUA on
// emiago/sipgo in front of the P2P core. Every SIP account is a P2P
// endpoint (alice/desk) logged in while its phone is registered; a SIP call
// becomes a P2P call of that endpoint, with the media anchored here: a
// plain-RTP leg toward the phone (symmetric, latched) that is the P2P call's
// audio source and sink (see docs/sip.md, DESIGN.md §1-3).
//
// Not implemented yet (each answers with an error or is absent, never
// faked): TLS transport, trunks, relaying without decoding (calls are
// decoded to PCM and re-encoded), RFC 4733 events toward P2P, re-INVITEs
// sent by the gateway and 491 glare, access-server-issued gateway
// credentials and one shared access session for all devices.
package gateway
