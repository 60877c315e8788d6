package control

import (
	"context"
	"fmt"
	"net/netip"
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

	// Handoffs: Pull and Rebind return pullInfo/rebindInfo (recorded in
	// handoffs when they have an id) with pullErr/rebindErr.
	handoffs    []endpoint.HandoffInfo
	pullInfo    endpoint.HandoffInfo
	pullErr     error
	pullCtx     context.Context
	lastPull    *endpoint.PullRequest
	rebindInfo  endpoint.HandoffInfo
	rebindErr   error
	lastRebind  netip.Addr
	sessions    map[string][]endpoint.SessionInfo
	sessionsErr error
	sessionsCtx context.Context
	// Push returns pushInfo (recorded when it has an id) with pushErr.
	pushInfo endpoint.HandoffInfo
	pushErr  error
	lastPush *endpoint.PushRequest
	// SendDTMF records what it sent (dtmf_test.go).
	dtmfSent []endpoint.DTMFRequest
	// Transfer returns transferErr, or a done TransferInfo for a call it
	// has; lastTransfer records the call and target asked for.
	transferErr  error
	lastTransfer [2]string
}

func newFake() *fakeAPI {
	return &fakeAPI{
		status: endpoint.StatusInfo{Identity: "alice/laptop", LoggedIn: true, Access: "127.0.0.1:7000",
			SignalAddr: "127.0.0.2:5070", MediaIP: "127.0.0.2", ActiveCalls: 1},
		buddies: []endpoint.BuddyInfo{
			{User: "alice", Self: true, Status: "online", Devices: []endpoint.DeviceInfo{{Device: "desk", Status: "online", SignalAddr: "127.0.0.3:5070"}}},
			{User: "bob", Status: "online", Devices: []endpoint.DeviceInfo{{Device: "mobile", Status: "online", SignalAddr: "127.0.0.7:5070"}}},
		},
		calls:      map[string]endpoint.CallInfo{},
		subs:       map[chan endpoint.Event]struct{}{},
		subBuf:     64,
		pullInfo:   sampleHandoff(),
		rebindInfo: sampleRebind(),
		sessions: map[string][]endpoint.SessionInfo{
			"desk": {{CallID: "c-00c1b475ad2d9629", Peer: "bob/mobile", Direction: "sendrecv", Codec: "PCMU", PeerMedia: "127.0.0.7:40002"}},
			"tv":   nil,
		},
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

func (f *fakeAPI) DialWith(ctx context.Context, target string, opts endpoint.CallOptions) (endpoint.CallInfo, error) {
	ci, err := f.Dial(ctx, target)
	ci.Number = opts.Number
	return ci, err
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

func (f *fakeAPI) Pull(ctx context.Context, req endpoint.PullRequest) (endpoint.HandoffInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastPull = &req
	f.pullCtx = ctx
	info := f.pullInfo
	if info.ID != "" {
		f.handoffs = append(f.handoffs, info)
	}
	return info, f.pullErr
}

func (f *fakeAPI) Push(_ context.Context, req endpoint.PushRequest) (endpoint.HandoffInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastPush = &req
	info := f.pushInfo
	if info.ID != "" {
		f.handoffs = append(f.handoffs, info)
	}
	return info, f.pushErr
}

func (f *fakeAPI) Transfer(_ context.Context, id, target string) (endpoint.TransferInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastTransfer = [2]string{id, target}
	ci, ok := f.calls[id]
	if !ok {
		return endpoint.TransferInfo{}, fmt.Errorf("%w: %q", endpoint.ErrNoSuchCall, id)
	}
	if f.transferErr != nil {
		return endpoint.TransferInfo{CallID: id, Peer: ci.Peer, Target: target, State: "failed", Error: f.transferErr.Error()}, f.transferErr
	}
	return endpoint.TransferInfo{CallID: id, Peer: ci.Peer, Target: target, State: "done", NewCallID: "c-00000000000000aa"}, nil
}

func (f *fakeAPI) TransferAttended(_ context.Context, id, id2 string) (endpoint.TransferInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastTransfer = [2]string{id, "attended " + id2}
	ci, ok := f.calls[id]
	ci2, ok2 := f.calls[id2]
	if !ok || !ok2 {
		return endpoint.TransferInfo{}, fmt.Errorf("%w: %q or %q", endpoint.ErrNoSuchCall, id, id2)
	}
	if f.transferErr != nil {
		return endpoint.TransferInfo{CallID: id, Peer: ci.Peer, Target: ci2.Peer, Replaces: id2, State: "failed", Error: f.transferErr.Error()}, f.transferErr
	}
	return endpoint.TransferInfo{CallID: id, Peer: ci.Peer, Target: ci2.Peer, Replaces: id2, State: "done", NewCallID: "c-00000000000000ab"}, nil
}

func (f *fakeAPI) pushed() *endpoint.PushRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastPush
}

func (f *fakeAPI) Sessions(ctx context.Context, device string) ([]endpoint.SessionInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessionsCtx = ctx
	if f.sessionsErr != nil {
		return nil, f.sessionsErr
	}
	list, ok := f.sessions[device]
	if !ok {
		return nil, fmt.Errorf("endpoint: sessions of %s: %w: no presence for alice/%s", device, endpoint.ErrUnknownPeer, device)
	}
	return list, nil
}

func (f *fakeAPI) Rebind(_ context.Context, ip netip.Addr) (endpoint.HandoffInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastRebind = ip
	info := f.rebindInfo
	if info.ID != "" {
		f.handoffs = append(f.handoffs, info)
	}
	return info, f.rebindErr
}

func (f *fakeAPI) Handoffs() []endpoint.HandoffInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]endpoint.HandoffInfo(nil), f.handoffs...)
}

func (f *fakeAPI) Handoff(id string) (endpoint.HandoffInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.handoffs {
		if h.ID == id {
			return h, nil
		}
	}
	return endpoint.HandoffInfo{}, fmt.Errorf("%w: %q", endpoint.ErrNoSuchHandoff, id)
}

// pulled is the last PullRequest, nil when Pull was not called.
func (f *fakeAPI) pulled() *endpoint.PullRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastPull
}

// rebound is the last Rebind address, invalid when Rebind was not called.
func (f *fakeAPI) rebound() netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastRebind
}

// sampleHandoff is a pull that took the call in twelve steps, as the
// endpoint records it (docs/control-api.md shows the same one).
func sampleHandoff() endpoint.HandoffInfo {
	t0 := time.Date(2025, 1, 2, 8, 14, 10, 200e6, time.UTC)
	login := time.Date(2025, 1, 2, 8, 12, 1, 123e6, time.UTC)
	step := func(n int, title string, at time.Time, detail string) endpoint.StepInfo {
		return endpoint.StepInfo{Step: n, Title: title, At: at, SinceStartMS: float64(at.Sub(t0).Microseconds()) / 1000, Detail: detail}
	}
	after := func(us int) time.Time { return t0.Add(time.Duration(us) * time.Microsecond) }
	finished := after(81720)
	return endpoint.HandoffInfo{
		ID: "h-3f9a0c1d2e4b", Kind: "pull", From: "alice/desk", CallID: "c-00c1b475ad2d9629", Peer: "bob/mobile",
		State: "done", Started: t0, Finished: &finished,
		Steps: []endpoint.StepInfo{
			step(1, "A logs in", login, "logged in to 127.0.0.1:7000"),
			step(2, "B's presence, then a query to B", after(50), "alice/desk is online at 127.0.0.3:5070; session query sent directly to it"),
			step(3, "B answers with session parameters", after(1420), "session c-00c1b475ad2d9629 with bob/mobile, two-way audio, PCMU"),
			step(4, "A sends audio to C", after(1800), "audio from 127.0.0.2:41000 (ssrc 5a3c9e01) to bob/mobile at 127.0.0.7:40002"),
			step(5, "A tells B to stop its audio", after(2310), "alice/desk stopped sending audio to bob/mobile"),
			step(6, "no audio from C reaches A", after(62400), "no audio from bob/mobile within 60ms of step 5 (0 packets)"),
			step(7, "A re-establishes with C out of band", after(64020), "bob/mobile accepted this endpoint as its peer (grant verified)"),
			step(8, "A closes its provisional session silently", after(64100), "provisional media 127.0.0.2:41000 closed; no termination signal sent"),
			step(9, "A obtains a new address", after(64310), "media now on 127.0.0.2:41002"),
			step(10, "A restarts audio on it", after(64350), "audio restarted from 127.0.0.2:41002 (ssrc 9b1e44d7)"),
			step(11, "A sends the new address to C", after(65120), "bob/mobile sends to 127.0.0.2:41002"),
			step(12, "C's audio on the new address, B released", after(81590), "audio from bob/mobile on 127.0.0.2:41002; alice/desk released"),
		},
		FirstAudioMS: 81.59,
		NewAddress:   "127.0.0.2:41002",
	}
}

// sampleRolledBack is a pull that C refused: the call stayed on B.
func sampleRolledBack() endpoint.HandoffInfo {
	h := sampleHandoff()
	h.ID, h.State = "h-77d0e2a91c05", "rolled-back"
	h.Steps = h.Steps[:6] // C's refusal and B's resume are no claim steps
	h.FirstAudioMS, h.NewAddress = 0, ""
	h.Error = "endpoint: handoff failed: rolled back: bob/mobile refused: endpoint: handoff grant refused: expired"
	return h
}

// sampleRebind is a rebind of this endpoint's media (mobility), with the
// endpoint's titles for steps 8-12 without B.
func sampleRebind() endpoint.HandoffInfo {
	t0 := time.Date(2025, 1, 2, 8, 20, 0, 0, time.UTC)
	at := func(us int) endpoint.StepInfo {
		return endpoint.StepInfo{At: t0.Add(time.Duration(us) * time.Microsecond), SinceStartMS: float64(us) / 1000}
	}
	s8, s9, s10, s11, s12 := at(120), at(410), at(450), at(1230), at(21070)
	s8.Step, s8.Title, s8.Detail = 8, "close the media session silently", "media 127.0.0.2:41002 closed; no termination signal sent"
	s9.Step, s9.Title, s9.Detail = 9, "obtain a new address", "media now on 127.0.0.7:41004"
	s10.Step, s10.Title, s10.Detail = 10, "restart audio on it", "audio restarted from 127.0.0.7:41004 (ssrc 0c44e1f2)"
	s11.Step, s11.Title, s11.Detail = 11, "send the new address to the peer", "bob/mobile sends to 127.0.0.7:41004"
	s12.Step, s12.Title, s12.Detail = 12, "the peer's audio on the new address", "audio from bob/mobile on 127.0.0.7:41004"
	return endpoint.HandoffInfo{ID: "h-a81c3e5f0d92", Kind: "rebind", CallID: "c-00c1b475ad2d9629", Peer: "bob/mobile",
		State: "done", Started: t0, Steps: []endpoint.StepInfo{s8, s9, s10, s11, s12},
		FirstAudioMS: 21.07, NewAddress: "127.0.0.7:41004"}
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
