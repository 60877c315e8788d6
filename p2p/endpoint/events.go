package endpoint

import "sync"

// subscriberBuffer is how many events a subscriber may lag behind before it
// is dropped (its channel closed) instead of blocking the endpoint.
const subscriberBuffer = 1024

// bus fans events out to subscribers in publication order.
type bus struct {
	mu     sync.Mutex
	subs   map[chan Event]struct{}
	closed bool
}

func newBus() *bus { return &bus{subs: make(map[chan Event]struct{})} }

func (b *bus) publish(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	for ch := range b.subs {
		select {
		case ch <- ev:
		default:
			// A subscriber that cannot keep up loses its subscription; the
			// endpoint never blocks on an observer.
			delete(b.subs, ch)
			close(ch)
		}
	}
}

func (b *bus) subscribe() (<-chan Event, func()) {
	ch := make(chan Event, subscriberBuffer)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(ch)
		return ch, func() {}
	}
	b.subs[ch] = struct{}{}
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
	}
}

func (b *bus) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	for ch := range b.subs {
		delete(b.subs, ch)
		close(ch)
	}
}

// EventKind is the typed form of Event.Type: code that reacts to events
// switches on it instead of comparing strings. The string bus (Subscribe,
// /v1/events) carries Type, which is Kind.String() for every kind the
// endpoint emits.
type EventKind int

// Event kinds. KindUnknown is an event type this version does not know (a
// push's state as the other device reported it, say): its Type says what.
const (
	KindUnknown EventKind = iota
	KindLogin
	KindLogout
	KindPresence
	KindCallDialing
	KindCallRinging
	KindCallActive
	KindCallEnded
	KindCallSignalingLost
	KindCallDTMF
	KindCallHeld
	KindCallResumed
	KindCallCodecChanged
	KindHandoffStep
	KindHandoffOffered
	KindHandoffRefused
	KindHandoffMuted
	KindHandoffUnmuted
	KindHandoffResumed
	KindHandoffOverlap
	KindHandoffReestablished
	KindHandoffReverted
	KindHandoffDone
	KindHandoffRolledBack
	KindHandoffCallEnded
	KindHandoffFailed
	KindMediaRebind
	KindMediaAddressLost
	KindMediaPeerMoved
	KindMediaSourceSwitched
	KindMediaSourceReturned
	KindPushOffered
	KindPushReceived
	KindPushRinging
	KindPushRefused
	KindPushDone
	KindPushFailed
	KindPushRolledBack
	KindPushCallEnded
	KindTransferRequested
	KindTransferReceived
	KindTransferRefused
	KindTransferDone
	KindTransferFailed
	KindTransferReplaced
	numEventKinds
)

// eventKindNames are the Type strings, by kind (docs/control-api.md).
var eventKindNames = [numEventKinds]string{
	KindUnknown:              "unknown",
	KindLogin:                "login",
	KindLogout:               "logout",
	KindPresence:             "presence",
	KindCallDialing:          "call.dialing",
	KindCallRinging:          "call.ringing",
	KindCallActive:           "call.active",
	KindCallEnded:            "call.ended",
	KindCallSignalingLost:    "call.signaling-lost",
	KindCallDTMF:             EventDTMF,
	KindCallHeld:             EventHeld,
	KindCallResumed:          EventResumed,
	KindCallCodecChanged:     EventCodecChanged,
	KindHandoffStep:          "handoff.step",
	KindHandoffOffered:       "handoff.offered",
	KindHandoffRefused:       "handoff.refused",
	KindHandoffMuted:         "handoff.muted",
	KindHandoffUnmuted:       "handoff.unmuted",
	KindHandoffResumed:       "handoff.resumed",
	KindHandoffOverlap:       "handoff.overlap",
	KindHandoffReestablished: "handoff.reestablished",
	KindHandoffReverted:      "handoff.reverted",
	KindHandoffDone:          "handoff.done",
	KindHandoffRolledBack:    "handoff.rolled-back",
	KindHandoffCallEnded:     "handoff.call-ended",
	KindHandoffFailed:        "handoff.failed",
	KindMediaRebind:          "media.rebind",
	KindMediaAddressLost:     "media.address-lost",
	KindMediaPeerMoved:       "media.peer-moved",
	KindMediaSourceSwitched:  "media.source-switched",
	KindMediaSourceReturned:  "media.source-returned",
	KindPushOffered:          "push.offered",
	KindPushReceived:         "push.received",
	KindPushRinging:          "push.ringing",
	KindPushRefused:          "push.refused",
	KindPushDone:             "push.done",
	KindPushFailed:           "push.failed",
	KindPushRolledBack:       "push.rolled-back",
	KindPushCallEnded:        "push.call-ended",
	KindTransferRequested:    "transfer.requested",
	KindTransferReceived:     "transfer.received",
	KindTransferRefused:      "transfer.refused",
	KindTransferDone:         "transfer.done",
	KindTransferFailed:       "transfer.failed",
	KindTransferReplaced:     "transfer.replaced",
}

// String returns the event's Type string ("call.ringing").
func (k EventKind) String() string {
	if k <= KindUnknown || k >= numEventKinds {
		return "unknown"
	}
	return eventKindNames[k]
}

// ParseEventKind returns the kind whose String is typ, or KindUnknown.
func ParseEventKind(typ string) EventKind {
	for k := KindUnknown + 1; k < numEventKinds; k++ {
		if eventKindNames[k] == typ {
			return k
		}
	}
	return KindUnknown
}

// typed fills in whichever of Kind and Type the emitter left out: new
// code sets Kind, older call sites set Type, subscribers get both.
func (ev *Event) typed() {
	switch {
	case ev.Kind != KindUnknown && ev.Type == "":
		ev.Type = ev.Kind.String()
	case ev.Kind == KindUnknown:
		ev.Kind = ParseEventKind(ev.Type)
	}
}
