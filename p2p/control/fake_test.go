package control

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/endpoint"
)

// fakeAPI is an in-memory endpoint.API: calls in a map, errors injected per
// operation, and an event bus that drops slow subscribers like the real one.
type fakeAPI struct {
	mu         sync.Mutex
	status     endpoint.StatusInfo
	buddies    []endpoint.BuddyInfo
	calls      map[string]endpoint.CallInfo
	order      []string
	nextID     int
	dialErr    error
	answerErr  error
	hangupErr  error
	forget     bool // Hangup removes the call, as an endpoint that prunes ended calls would
	lastTarget string
	dialCtx    context.Context
	subs       map[chan endpoint.Event]struct{}
	subBuf     int
}

func newFake() *fakeAPI {
	return &fakeAPI{
		status: endpoint.StatusInfo{Identity: "alice/laptop", LoggedIn: true, Access: "127.0.0.1:7000",
			SignalAddr: "127.0.0.2:5070", MediaIP: "127.0.0.2", ActiveCalls: 1},
		buddies: []endpoint.BuddyInfo{
			{User: "alice", Self: true, Status: "online", Devices: []endpoint.DeviceInfo{{Device: "desk", Status: "online", SignalAddr: "127.0.0.3:5070"}}},
			{User: "bob", Status: "online", Devices: []endpoint.DeviceInfo{{Device: "mobile", Status: "online", SignalAddr: "127.0.0.7:5070"}}},
		},
		calls:  map[string]endpoint.CallInfo{},
		subs:   map[chan endpoint.Event]struct{}{},
		subBuf: 64,
	}
}

// addCall adds a call and returns it.
func (f *fakeAPI) addCall(ci endpoint.CallInfo) endpoint.CallInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[ci.ID] = ci
	f.order = append(f.order, ci.ID)
	return ci
}

func (f *fakeAPI) Status() endpoint.StatusInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeAPI) Buddies() []endpoint.BuddyInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buddies
}

func (f *fakeAPI) Calls() []endpoint.CallInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []endpoint.CallInfo
	for _, id := range f.order {
		if ci, ok := f.calls[id]; ok {
			out = append(out, ci)
		}
	}
	return out
}

func (f *fakeAPI) Call(id string) (endpoint.CallInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ci, ok := f.calls[id]
	if !ok {
		return endpoint.CallInfo{}, fmt.Errorf("endpoint: call %q: %w", id, endpoint.ErrNoSuchCall)
	}
	return ci, nil
}

func (f *fakeAPI) Dial(ctx context.Context, target string) (endpoint.CallInfo, error) {
	f.mu.Lock()
	f.lastTarget = target
	f.dialCtx = ctx
	err := f.dialErr
	f.nextID++
	id := fmt.Sprintf("c-%04x", f.nextID)
	f.mu.Unlock()
	if err != nil {
		return endpoint.CallInfo{}, err
	}
	return f.addCall(endpoint.CallInfo{ID: id, Direction: "outgoing", Peer: target,
		State: endpoint.CallRinging.String(), Started: time.Date(2025, 1, 2, 8, 12, 1, 0, time.UTC)}), nil
}

func (f *fakeAPI) Answer(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.answerErr != nil {
		return f.answerErr
	}
	ci, ok := f.calls[id]
	if !ok {
		return fmt.Errorf("endpoint: answer %q: %w", id, endpoint.ErrNoSuchCall)
	}
	if ci.Direction != "incoming" || ci.State != endpoint.CallRinging.String() {
		return fmt.Errorf("endpoint: answer %q (%s %s): %w", id, ci.Direction, ci.State, endpoint.ErrBadState)
	}
	ci.State = endpoint.CallActive.String()
	ci.Codec = "PCMU"
	f.calls[id] = ci
	return nil
}

func (f *fakeAPI) Hangup(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hangupErr != nil {
		return f.hangupErr
	}
	ci, ok := f.calls[id]
	if !ok {
		return fmt.Errorf("endpoint: hangup %q: %w", id, endpoint.ErrNoSuchCall)
	}
	if ci.State == endpoint.CallEnded.String() {
		return fmt.Errorf("endpoint: hangup %q: %w", id, endpoint.ErrBadState)
	}
	if f.forget {
		delete(f.calls, id)
		return nil
	}
	ci.State = endpoint.CallEnded.String()
	ci.EndReason = "local hangup"
	f.calls[id] = ci
	return nil
}

func (f *fakeAPI) Subscribe() (<-chan endpoint.Event, func()) {
	ch := make(chan endpoint.Event, f.subBuf)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.subs[ch]; ok {
			delete(f.subs, ch)
			close(ch)
		}
	}
}

// publish fans ev out; a full subscriber is dropped, like the real bus.
func (f *fakeAPI) publish(ev endpoint.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		select {
		case ch <- ev:
		default:
			delete(f.subs, ch)
			close(ch)
		}
	}
}

// dropAll ends every subscription, as the endpoint does to a slow one.
func (f *fakeAPI) dropAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		delete(f.subs, ch)
		close(ch)
	}
}

// target is the last Dial target.
func (f *fakeAPI) target() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastTarget
}

func (f *fakeAPI) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The real endpoint is what the control API serves in production.
var _ endpoint.API = (*endpoint.Endpoint)(nil)
