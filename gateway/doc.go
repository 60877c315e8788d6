// Package gateway will assemble a gateway endpoint: the P2P core (p2p/),
// the SIP bridge (sipbridge/), plugins (plugins/) and media anchoring,
// behind the control API (see ../shared/DESIGN.md §1 and §3).
//
// Not implemented yet: `baton gateway` does not exist in this build. The
// P2P core it builds on (access server, endpoints, direct SRTP calls) is in
// p2p/ and runs today as `baton access` and `baton phone`.
package gateway
