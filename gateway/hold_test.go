package gateway

import (
	"net/netip"
	"testing"
	"time"
)

// TestLegQuietWhileHeld: a phone whose SDP says it sends nothing
// (a=recvonly, a=inactive: on hold) is not silent for the media timeout;
// when it sends again the timeout counts from then, not from its last
// packet before the hold.
func TestLegQuietWhileHeld(t *testing.T) {
	t.Parallel()
	l, err := openLeg(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	later := time.Now().Add(time.Hour)
	if got := l.silentFor(later); got < 59*time.Minute {
		t.Fatalf("silentFor an hour later = %v before any hold", got)
	}
	l.expectMedia(false)
	if got := l.silentFor(later); got != 0 {
		t.Errorf("silentFor while the phone sends nothing = %v, want 0", got)
	}
	l.expectMedia(false) // again: still quiet
	if got := l.silentFor(later); got != 0 {
		t.Errorf("silentFor after a second hold = %v, want 0", got)
	}
	l.expectMedia(true)
	if got := l.silentFor(time.Now().Add(time.Second)); got > 2*time.Second {
		t.Errorf("silentFor a second after the resume = %v, want it counted from the resume", got)
	}
	l.expectMedia(true) // sending already: the clock is not reset again
	if got := l.silentFor(later); got < 59*time.Minute {
		t.Errorf("silentFor an hour after the resume = %v", got)
	}
}
