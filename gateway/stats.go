package gateway

import "sync/atomic"

// stats are the gateway's own counters (the device endpoints count their
// P2P legs).
type stats struct {
	registers, authFailed, authLimited atomic.Uint64
	// authReplayed counts requests refused because their credentials
	// were already used (a nonce count that did not increase): right
	// credentials, so not failures for the limiter (gateway.authenticate).
	authReplayed atomic.Uint64
	// sipsRefused counts sips: requests that came over UDP or TCP (sips.go).
	sipsRefused atomic.Uint64
}
