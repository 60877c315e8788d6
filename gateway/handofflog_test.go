package gateway

import (
	"slices"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/endpoint"
)

func testHandoffLog(t *testing.T) (*Gateway, *time.Time) {
	t.Helper()
	now := time.Unix(5000, 0)
	g := &Gateway{cfg: Config{Now: func() time.Time { return now }}, bridges: map[string]*bridge{}}
	g.hlog = newHandoffLog(g)
	return g, &now
}

func ev(at time.Time, typ, callID, peer string, step int) endpoint.Event {
	return endpoint.Event{Time: at, Type: typ, CallID: callID, Peer: peer, Step: step}
}

// B and C records from the devices' events: a pull that commits (B's call
// ends, C moves), one that rolls back, and the SIP messages of the
// device's own dialog inside the window only.
func TestHandoffLogRoles(t *testing.T) {
	g, now := testHandoffLog(t)
	h := g.hlog
	t0 := *now
	h.link("alice/desk", "c-1", "sip-desk", nil)
	h.link("pstn/trunk1", "c-1", "sip-trunk", &leg{})
	rec := func(at time.Time, sent bool, msg string) {
		*now = at
		h.sip.record(sent, "UDP", "127.0.0.1:5070", []byte(msg))
	}
	bye := "BYE sip:desk SIP/2.0\r\nCall-ID: sip-desk\r\nCSeq: 2 BYE\r\n\r\n"
	rec(t0.Add(-time.Second), true, bye) // before the window
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	h.onEvent("alice/desk", ev(at(0), "handoff.offered", "c-1", "alice/laptop", 3))
	h.onEvent("pstn/trunk1", ev(at(2), "handoff.overlap", "c-1", "", 4))
	h.onEvent("alice/desk", ev(at(3), "handoff.muted", "c-1", "", 5))
	h.onEvent("pstn/trunk1", ev(at(60), "handoff.reestablished", "c-1", "alice/laptop", 7))
	h.onEvent("pstn/trunk1", ev(at(61), "media.peer-moved", "c-1", "alice/laptop", 11))
	h.onEvent("alice/desk", ev(at(70), "call.ended", "c-1", "pstn/trunk1", 0))
	rec(at(71), true, bye)
	rec(at(72), false, "SIP/2.0 200 OK\r\nCall-ID: sip-desk\r\nCSeq: 2 BYE\r\n\r\n")
	rec(at(73), false, "SIP/2.0 200 OK\r\nCall-ID: sip-other\r\nCSeq: 2 BYE\r\n\r\n")
	rec(at(5000), true, bye) // after the window

	// A second pull of another call, refused back: rolled back at B.
	h.onEvent("alice/desk", ev(at(6000), "handoff.offered", "c-2", "alice/laptop", 3))
	h.onEvent("alice/desk", ev(at(6010), "handoff.resumed", "c-2", "", 0))

	list := g.Handoffs()
	if len(list) != 3 {
		t.Fatalf("%d records: %+v", len(list), list)
	}
	b, c, back := list[0], list[1], list[2]
	if b.Role != "B" || b.Device != "alice/desk" || b.State != "done" || b.To != "alice/laptop" || commitMS(b.TimeToCommitMS) != 70 || len(b.Steps) != 3 {
		t.Errorf("B: %+v", b)
	}
	if len(b.SIPMessages) != 2 || b.SIPMessages[0].Method != "BYE" || b.SIPMessages[1].Status != 200 {
		t.Errorf("B's SIP messages: %+v", b.SIPMessages)
	}
	if b.GapHeardByCMS == nil {
		t.Errorf("B: C (the trunk) is behind this gateway, but no gap_heard_by_c_ms")
	}
	if back.GapHeardByCMS != nil {
		t.Errorf("c-2 has no leg toward C here, but a gap: %v", *back.GapHeardByCMS)
	}
	if c.Role != "C" || c.Device != "pstn/trunk1" || c.State != "done" || commitMS(c.TimeToCommitMS) != 58 || len(c.SIPMessages) != 0 || c.GapHeardByCMS == nil {
		t.Errorf("C: %+v", c)
	}
	if back.State != "rolled-back" || back.CallID != "c-2" || back.Finished == nil {
		t.Errorf("rolled back: %+v", back)
	}
	if one, err := g.Handoff(b.ID); err != nil || one.ID != b.ID {
		t.Errorf("Handoff(%s) = %+v, %v", b.ID, one, err)
	}
	if _, err := g.Handoff("g-nope"); err == nil {
		t.Error("Handoff of an unknown id succeeded")
	}
}

// The gateway's event stream: device events with their device, only the
// handoff/push/transfer kinds, and a subscriber that falls behind is
// dropped rather than blocking the endpoint.
func TestGatewayEventStream(t *testing.T) {
	g, now := testHandoffLog(t)
	ch, cancel := g.SubscribeEvents()
	defer cancel()
	g.hlog.onEvent("alice/desk", ev(*now, "call.active", "c-1", "bob", 0))
	g.hlog.onEvent("alice/desk", ev(*now, "handoff.offered", "c-1", "alice/laptop", 3))
	select {
	case got := <-ch:
		if got.Device != "alice/desk" || got.Type != "handoff.offered" {
			t.Fatalf("got %+v", got)
		}
	case <-time.After(time.Second):
		t.Fatal("no event")
	}
	for range eventBuffer + 1 {
		g.hlog.onEvent("alice/desk", ev(*now, "handoff.muted", "c-1", "", 5))
	}
	n := 0
	for range ch {
		n++
	}
	if n != eventBuffer {
		t.Fatalf("read %d events before the close, want %d", n, eventBuffer)
	}
	cancel() // after the drop: no double close
}

// Transfers from the devices' events: a ctl transfer the device asked for
// (transferor), one asked of it (transferee) that fails, and the target of
// an attended transfer's invite-replaces.
func TestHandoffLogTransfers(t *testing.T) {
	g, now := testHandoffLog(t)
	h := g.hlog
	t0 := *now
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	h.onEvent("alice/desk", ev(at(0), "transfer.requested", "c-1", "bob/softphone", 0))
	h.onEvent("alice/desk", ev(at(40), "transfer.done", "c-1", "bob/softphone", 0))
	h.onEvent("pstn/trunk1", ev(at(100), "transfer.received", "c-2", "alice/laptop", 0))
	h.onEvent("pstn/trunk1", ev(at(130), "transfer.failed", "c-2", "alice/laptop", 0))
	h.onEvent("carol/desk", ev(at(200), "transfer.replaced", "c-3", "bob/softphone", 0))
	list := g.Handoffs()
	if len(list) != 3 {
		t.Fatalf("%d records: %+v", len(list), list)
	}
	if r := list[0]; r.Role != "transferor" || r.Kind != "transfer" || r.State != "done" || commitMS(r.TimeToCommitMS) != 40 || len(r.Steps) != 2 {
		t.Errorf("transferor: %+v", r)
	}
	if r := list[1]; r.Role != "transferee" || r.State != "failed" || r.TimeToCommitMS != nil || r.Finished == nil {
		t.Errorf("transferee: %+v", r)
	}
	if r := list[2]; r.Role != "target" || r.State != "done" || r.Device != "carol/desk" {
		t.Errorf("target: %+v", r)
	}
}

func commitMS(p *float64) float64 {
	if p == nil {
		return -1
	}
	return *p
}

// A session query alone (no stop-audio follows): B's record ends as
// not-taken once B's offer timer has run out, and a second query in the
// same round is a step of the same record.
func TestHandoffLogQueryOnly(t *testing.T) {
	g, now := testHandoffLog(t)
	t0 := *now
	g.hlog.onEvent("alice/desk", ev(t0, "handoff.offered", "c-1", "alice/laptop", 3))
	g.hlog.onEvent("alice/desk", ev(t0.Add(time.Second), "handoff.offered", "c-1", "alice/mobile", 3))
	if list := g.Handoffs(); len(list) != 1 || list[0].State != "running" || len(list[0].Steps) != 2 {
		t.Fatalf("within the offer timer: %+v", list)
	}
	*now = t0.Add(offerTimeout + time.Second)
	list := g.Handoffs()
	if len(list) != 1 || list[0].State != "not-taken" || list[0].Finished == nil || !list[0].Finished.Equal(t0.Add(offerTimeout)) {
		t.Fatalf("after the offer timer: %+v", list)
	}
}

// Issue 9 §3, the gateway as C when the puller dies before step 7: C's
// media saw the new device's stream play (step 4) and then the old one's
// again (its silence), and nothing else; the record says so, abandoned,
// with the gap toward C. A pull that goes through keeps one step 4 (the
// media's, then the table's) and ends done; a new stream followed by
// media.peer-moved with no re-establish is the peer's own move, no pull.
func TestHandoffLogCPullerDies(t *testing.T) {
	g, now := testHandoffLog(t)
	h := g.hlog
	t0 := *now
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	h.link("carol/desk", "c-1", "sip-carol", &leg{})
	h.onEvent("carol/desk", ev(at(0), "media.source-switched", "c-1", "", 0))
	h.onEvent("carol/desk", ev(at(130), "media.source-returned", "c-1", "", 0))

	h.onEvent("carol/desk", ev(at(1000), "media.source-switched", "c-2", "", 0))
	h.onEvent("carol/desk", ev(at(1040), "handoff.overlap", "c-2", "", 4))
	h.onEvent("carol/desk", ev(at(1050), "handoff.reestablished", "c-2", "alice/mobile", 7))
	h.onEvent("carol/desk", ev(at(1060), "media.source-switched", "c-2", "", 0)) // A's restarted stream
	h.onEvent("carol/desk", ev(at(1070), "media.peer-moved", "c-2", "alice/mobile", 11))
	h.onEvent("carol/desk", ev(at(1080), "media.source-switched", "c-2", "", 0)) // A's restarted stream, after step 11

	h.onEvent("carol/desk", ev(at(2000), "media.source-switched", "c-3", "", 0))
	h.onEvent("carol/desk", ev(at(2010), "media.peer-moved", "c-3", "bob/laptop", 11))
	*now = at(3000)

	list := g.Handoffs()
	if len(list) != 2 {
		t.Fatalf("%d records, want the abandoned pull and the done one: %+v", len(list), list)
	}
	steps := func(r int) []int {
		var s []int
		for _, st := range list[r].Steps {
			s = append(s, st.Step)
		}
		return s
	}
	ab := list[0]
	if ab.Role != "C" || ab.Device != "carol/desk" || ab.CallID != "c-1" || ab.State != "abandoned" || ab.Error == "" ||
		ab.TimeToCommitMS != nil || ab.Finished == nil || !ab.Finished.Equal(at(130)) || !slices.Equal(steps(0), []int{4, 6}) {
		t.Errorf("abandoned: %+v, steps %v", ab, steps(0))
	}
	if ab.GapHeardByCMS == nil {
		t.Error("abandoned: no gap_heard_by_c_ms, but C's leg is this gateway's")
	}
	done := list[1]
	if done.CallID != "c-2" || done.State != "done" || commitMS(done.TimeToCommitMS) != 50 || !slices.Equal(steps(1), []int{4, 7, 11}) {
		t.Errorf("done: %+v, steps %v", done, steps(1))
	}
}

// A push a device ran is recorded once, as the device's own push (role B):
// the B record its handoff.offered and muted events would build is the
// same move. A B record outside the push's time is kept.
func TestHandoffLogPushNotTwice(t *testing.T) {
	t0 := time.Unix(5000, 0)
	fin := t0.Add(100 * time.Millisecond)
	pushes := map[string][]endpoint.HandoffInfo{linkKey("alice/desk", "c-1"): {{Kind: "push", CallID: "c-1", Started: t0, Finished: &fin}}}
	if !pushedBy(pushes[linkKey("alice/desk", "c-1")], t0.Add(10*time.Millisecond)) {
		t.Error("a B record inside the push's time is not the push's")
	}
	if pushedBy(pushes[linkKey("alice/desk", "c-1")], t0.Add(time.Second)) || pushedBy(pushes[linkKey("alice/desk", "c-2")], t0.Add(10*time.Millisecond)) {
		t.Error("a B record after the push, or of another call, taken for the push's")
	}
}
