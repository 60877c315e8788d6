package control

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/endpoint"
)

func sampleGatewayHandoff() GatewayHandoff {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	fin := t0.Add(60 * time.Millisecond)
	gap, commit := 21.5, 41.2
	return GatewayHandoff{
		HandoffInfo: endpoint.HandoffInfo{ID: "g-B-1", Kind: "pull", From: "alice/desk", To: "alice/laptop", CallID: "c-1",
			State: "done", Started: t0, Finished: &fin,
			Steps: []endpoint.StepInfo{{Step: 3, Title: "handoff.offered", At: t0, SinceStartMS: 0}}},
		Device: "alice/desk", Role: "B", TimeToCommitMS: &commit, GapHeardByCMS: &gap, SIPCallIDs: []string{"sip-1"},
		SIPMessages: []SIPMessage{
			{Time: t0.Add(52 * time.Millisecond), Dir: "sent", Method: "BYE", CallID: "sip-1", CSeq: "2 BYE", Remote: "udp:127.0.0.1:5070"},
			{Time: t0.Add(53 * time.Millisecond), Dir: "received", Status: 200, CallID: "sip-1", CSeq: "2 BYE", Remote: "udp:127.0.0.1:5070"},
		},
	}
}

// A process without an endpoint serves /v1/handoffs from Options.Handoffs
// (a gateway); without the hook the routes stay 404 no-endpoint.
func TestGatewayHandoffRoutes(t *testing.T) {
	t.Parallel()
	ts, c := serve(t, Options{
		Handoffs: func() any { return []GatewayHandoff{sampleGatewayHandoff()} },
		Handoff: func(id string) (any, error) {
			if id == "g-B-1" {
				return sampleGatewayHandoff(), nil
			}
			return nil, fmt.Errorf("%w: %q", endpoint.ErrNoSuchHandoff, id)
		},
	})
	list, err := c.HandoffRecords(t.Context())
	if err != nil || len(list) != 1 || list[0].Role != "B" || len(list[0].SIPMessages) != 2 || list[0].SIPMessages[0].Method != "BYE" ||
		list[0].GapHeardByCMS == nil || *list[0].GapHeardByCMS != 21.5 || list[0].TimeToCommitMS == nil || *list[0].TimeToCommitMS != 41.2 || len(list[0].Steps) != 1 {
		t.Fatalf("HandoffRecords = %+v, %v", list, err)
	}
	one, err := c.HandoffRecord(t.Context(), "g-B-1")
	if err != nil || one.Device != "alice/desk" {
		t.Fatalf("HandoffRecord = %+v, %v", one, err)
	}
	wantError(t, request(t, ts, "GET", "/v1/handoffs/g-nope", ""), 404, CodeNoSuchHandoff)

	bare, _ := serve(t, Options{})
	wantError(t, request(t, bare, "GET", "/v1/handoffs", ""), 404, CodeNoEndpoint)
}

func TestPrintHandoffRecord(t *testing.T) {
	var b bytes.Buffer
	if err := PrintHandoffRecord(&b, sampleGatewayHandoff()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"g-B-1  pull", "gateway: alice/desk as B  commit after 41.20 ms  longest gap heard by C 21.50 ms",
		"sip  +52.00 ms  sent      BYE", "received  200", "call sip-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	c := sampleGatewayHandoff()
	c.SIPMessages = nil
	b.Reset()
	_ = PrintHandoffRecord(&b, c)
	if !strings.Contains(b.String(), "no SIP messages") {
		t.Errorf("empty list not said:\n%s", b.String())
	}
	// An endpoint's own handoff prints as before.
	b.Reset()
	_ = PrintHandoffRecord(&b, GatewayHandoff{HandoffInfo: c.HandoffInfo})
	if strings.Contains(b.String(), "gateway:") {
		t.Errorf("endpoint handoff printed gateway lines:\n%s", b.String())
	}
}

// A process without an endpoint streams Options.Events (a gateway's device
// events, each with its device), filtered by ?type= like an endpoint's.
func TestGatewayEventsRoute(t *testing.T) {
	t.Parallel()
	ch := make(chan DeviceEvent, 4)
	cancelled := make(chan struct{})
	ts, _ := serve(t, Options{Events: func() (<-chan DeviceEvent, func()) {
		return ch, func() { close(cancelled) }
	}})
	ch <- DeviceEvent{Device: "pstn/trunk1", Event: endpoint.Event{Type: "media.peer-moved", CallID: "c-1"}}
	ch <- DeviceEvent{Device: "alice/desk", Event: endpoint.Event{Type: "handoff.offered", CallID: "c-1", Step: 3}}
	close(ch) // the subscriber "fell behind": the stream ends
	r := request(t, ts, "GET", "/v1/events?type=handoff.", "")
	if r.status != 200 || strings.Count(r.body, "\n") != 1 || !strings.Contains(r.body, `"device":"alice/desk"`) || !strings.Contains(r.body, `"type":"handoff.offered"`) {
		t.Fatalf("got %d %q", r.status, r.body)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the subscription was not cancelled when the stream ended")
	}
	bare, _ := serve(t, Options{})
	wantError(t, request(t, bare, "GET", "/v1/events", ""), 404, CodeNoEndpoint)
}
