package media

import (
	"sync"
	"testing"
	"time"
)

// TestStatsPacketTimesOnConfigClock: with Config.Now, FirstPacket and
// LastPacket are times of that clock (the endpoint's injectable Clock), not
// of the wall clock, and only accepted packets move them.
func TestStatsPacketTimesOnConfigClock(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC) // far from the wall clock
	set := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	peer := newRawPeer(t, "127.0.0.1", nil)
	s := openSession(t, Config{Local: addr("127.0.0.1:0"), Now: clock})
	s.SetRemote(peer.addr)
	received := func(n uint64) {
		t.Helper()
		eventually(t, "the packet to be received", func() bool { return s.Stats().PacketsReceived >= n })
	}

	t0 := clock()
	peer.send(s.LocalAddr(), peer.packet(nil, testPT))
	received(1)
	if st := s.Stats(); !st.FirstPacket.Equal(t0) || !st.LastPacket.Equal(t0) {
		t.Fatalf("first/last %v %v, want both %v (the configured clock)", st.FirstPacket, st.LastPacket, t0)
	}

	t1 := t0.Add(time.Hour)
	set(t1)
	peer.send(s.LocalAddr(), peer.packet(nil, testPT))
	received(2)
	if st := s.Stats(); !st.FirstPacket.Equal(t0) || !st.LastPacket.Equal(t1) {
		t.Fatalf("first/last %v %v, want %v %v", st.FirstPacket, st.LastPacket, t0, t1)
	}

	// A packet the session refuses (another payload type) is no packet.
	set(t1.Add(time.Hour))
	peer.send(s.LocalAddr(), peer.packet(nil, testPT+1))
	eventually(t, "the wrong payload type to be counted", func() bool { return s.Stats().WrongPayloadType >= 1 })
	if st := s.Stats(); !st.LastPacket.Equal(t1) {
		t.Errorf("a refused packet moved LastPacket to %v, want %v", st.LastPacket, t1)
	}
}

// TestStatsPacketTimesWithoutClock: with no Config.Now they are arrival
// times on the wall clock, as before.
func TestStatsPacketTimesWithoutClock(t *testing.T) {
	t.Parallel()
	peer := newRawPeer(t, "127.0.0.1", nil)
	s := openSession(t, Config{Local: addr("127.0.0.1:0")})
	s.SetRemote(peer.addr)
	before := time.Now()
	peer.send(s.LocalAddr(), peer.packet(nil, testPT))
	eventually(t, "the packet to be received", func() bool { return s.Stats().PacketsReceived >= 1 })
	if st := s.Stats(); st.FirstPacket.Before(before) || st.LastPacket.After(time.Now()) {
		t.Errorf("first/last %v %v, want between %v and now", st.FirstPacket, st.LastPacket, before)
	}
}
