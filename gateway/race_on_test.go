//go:build race

package gateway

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// allocation counts through pooled code (pion/srtp) are not meaningful.
const raceEnabled = true
