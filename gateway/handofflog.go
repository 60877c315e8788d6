package gateway

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/baton-voice/baton/p2p/control"
	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/p2p/handoff"
)

// The handoff log (issue 9 §5, docs/control-api.md "The gateway's
// handoffs"): what GET /v1/handoffs serves at a gateway. It joins three
// records kept here:
//
//   - the SIP messages of the gateway's listeners (siplog.go);
//   - a bounded history of P2P call id -> SIP Call-ID and SIP leg, filled
//     when a bridge claims a P2P call (device.claim), so a handoff's P2P
//     call can be matched to the SIP dialogs it touched after the bridge
//     is gone;
//   - the handoffs where a device is B or C and the transfers, built from
//     the devices' events (an endpoint records only the handoffs it runs,
//     as A: those come from its Handoffs()).

// SIPWindowBefore and SIPWindowAfter widen a handoff's window for its
// sip_messages: from SIPWindowBefore before it started to SIPWindowAfter
// after it finished (or now, while it runs). The BYE to a desk phone that
// lost its call follows the commit by the P2P release; the INVITE of a
// phone that dials the pickup code comes before the pull starts.
const (
	SIPWindowBefore = 500 * time.Millisecond
	SIPWindowAfter  = 500 * time.Millisecond
)

// callHistorySize bounds the P2P-to-SIP call history; recordsSize the
// event-built records.
const (
	callHistorySize = 1024
	recordsSize     = 100
)

// gapHeard is how long a pause between two RTP packets sent to a phone
// must be to be kept in the leg's gap ring (leg.go).
const gapHeard = 30 * time.Millisecond

type callLink struct {
	p2pID  string
	device string
	sipIDs []string
	leg    *leg
}

type handoffLog struct {
	g   *Gateway
	sip *sipLog

	mu    sync.Mutex
	addrs [][2]string // network, key of each listener (listen)
	// calls are by device and P2P call id (linkKey): a call keeps its id
	// across handoffs, and each device's side of it has its own dialogs
	// (the trunk's, the desk phone's first and second).
	calls   map[string]*callLink
	order   []string    // keys of calls, oldest first
	records []*gwRecord // oldest first
	seq     int

	// subscribers of the gateway's event stream (SubscribeEvents)
	subMu sync.Mutex
	subs  map[chan control.DeviceEvent]struct{}
}

// eventBuffer is how many events a subscriber may lag behind before it is
// dropped (its channel closed), as an endpoint's.
const eventBuffer = 256

// SubscribeEvents is the gateway's GET /v1/events: the handoff.*, push.*,
// transfer.*, media.peer-moved and media.source-* events of every device, with the
// device, and a transfer.refer event per sipfrag of a SIP phone's REFER.
// The channel is closed if the subscriber falls behind; cancel ends it.
func (g *Gateway) SubscribeEvents() (<-chan control.DeviceEvent, func()) {
	h := g.hlog
	ch := make(chan control.DeviceEvent, eventBuffer)
	h.subMu.Lock()
	h.subs[ch] = struct{}{}
	h.subMu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.subMu.Lock()
			if _, ok := h.subs[ch]; ok {
				delete(h.subs, ch)
				close(ch)
			}
			h.subMu.Unlock()
		})
	}
}

// streamed says whether a device event goes on the gateway's stream.
func streamed(typ string) bool {
	for _, p := range []string{"handoff.", "push.", "transfer.", "media.peer-moved", "media.source-"} {
		if strings.HasPrefix(typ, p) {
			return true
		}
	}
	return false
}

func (h *handoffLog) publish(device string, ev endpoint.Event) {
	if !streamed(ev.Type) {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = h.g.cfg.Now()
	}
	de := control.DeviceEvent{Device: device, Event: ev}
	h.subMu.Lock()
	defer h.subMu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- de:
		default:
			delete(h.subs, ch) // fell behind
			close(ch)
		}
	}
}

// gwRecord is a handoff or transfer built from a device's events.
type gwRecord struct {
	info      control.GatewayHandoff
	committed time.Time
}

func newHandoffLog(g *Gateway) *handoffLog {
	return &handoffLog{g: g, sip: newSIPLog(sipLogSize, g.cfg.Now), calls: map[string]*callLink{},
		subs: map[chan control.DeviceEvent]struct{}{}}
}

// listen files the SIP messages crossing the listener of network ("udp",
// "tcp", "tls") on addr under this gateway. A wildcard listener
// (":5060", "0.0.0.0:5060", "[::]:5060") is filed by port: sipgo names
// the socket's real local address (siplog.go, find).
func (h *handoffLog) listen(network, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return
	}
	key := addr
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		key = ":" + port
	}
	h.mu.Lock()
	h.addrs = append(h.addrs, [2]string{network, key})
	h.mu.Unlock()
	tracer.add(network, key, h.sip)
}

// dialed files the SIP messages of the TCP and TLS connections the
// gateway opens itself (from an ephemeral port) under this gateway.
func (h *handoffLog) dialed(c connPools) {
	tracer.addConns(c, h.sip)
}

func (h *handoffLog) close() {
	h.mu.Lock()
	addrs := h.addrs
	h.addrs = nil
	h.mu.Unlock()
	for _, a := range addrs {
		tracer.remove(a[0], a[1], h.sip)
	}
	tracer.removeConns(h.sip)
}

// link records that the P2P call id of device is carried by the SIP
// dialog sipID ("" when not known yet) and the leg l.
func (h *handoffLog) link(device, id, sipID string, l *leg) {
	if id == "" {
		return
	}
	key := linkKey(device, id)
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.calls[key]
	if c == nil {
		c = &callLink{p2pID: id, device: device}
		h.calls[key] = c
		h.order = append(h.order, key)
		if len(h.order) > callHistorySize {
			delete(h.calls, h.order[0])
			h.order = h.order[1:]
		}
	}
	if l != nil {
		c.leg = l
	}
	if sipID != "" && !contains(c.sipIDs, sipID) {
		c.sipIDs = append(c.sipIDs, sipID)
	}
}

// linkBridges records the P2P call of every live bridge under each SIP
// Call-ID the gateway files it by (a push's forks, a replaced dialog).
func (h *handoffLog) linkBridges() {
	type keyed struct {
		sipID string
		b     *bridge
	}
	h.g.mu.Lock()
	list := make([]keyed, 0, len(h.g.bridges))
	for id, b := range h.g.bridges {
		list = append(list, keyed{id, b})
	}
	h.g.mu.Unlock()
	for _, k := range list {
		h.linkBridge(k.sipID, k.b)
	}
}

// linkBridge records b's P2P call under sipID.
func (h *handoffLog) linkBridge(sipID string, b *bridge) {
	b.mu.Lock()
	id := b.p2pID
	b.mu.Unlock()
	h.link(b.dev.identity(), id, sipID, b.leg)
}

func linkKey(device, id string) string { return device + "\x00" + id }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (h *handoffLog) linkOf(device, id string) (sipIDs []string, l *leg) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.calls[linkKey(device, id)]; c != nil {
		return append([]string(nil), c.sipIDs...), c.leg
	}
	return nil, nil
}

// onEvent builds the B, C and transfer records from a device's events.
// It runs on the endpoint's goroutines: no blocking.
func (h *handoffLog) onEvent(device string, ev endpoint.Event) {
	h.publish(device, ev)
	at := ev.Time
	if at.IsZero() {
		at = h.g.cfg.Now()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch ev.Type {
	case "handoff.offered": // B, step 3
		// Another query in the same round (BOffered + query) is a step of
		// the round's record, not a new one.
		r := h.running(device, "B", ev.CallID)
		if r == nil {
			r = h.open(device, "B", "pull", ev.CallID, at)
		}
		r.info.To = ev.Peer
		h.step(r, ev, at)
	case "handoff.muted": // B, step 5
		if r := h.running(device, "B", ev.CallID); r != nil {
			h.step(r, ev, at)
		}
	case "handoff.resumed":
		if r := h.running(device, "B", ev.CallID); r != nil {
			h.step(r, ev, at)
			h.finish(r, "rolled-back", ev.Detail, at)
		}
	case "handoff.refused":
		if r := h.running(device, "B", ev.CallID); r != nil {
			h.finish(r, "refused", ev.Detail, at)
		}
	case "media.source-switched": // C, step 4 as C's media saw it
		// A new authenticated stream plays: another device of the far
		// party is taking the call (or the peer moved, see
		// media.peer-moved). Nothing else tells C of a puller that dies
		// before step 7.
		r := h.running(device, "C", ev.CallID)
		if r == nil {
			if h.justMoved(device, ev.CallID, at) {
				// The new device's restarted stream (steps 10-12)
				// reaching C's media after step 11 ended its record.
				break
			}
			r = h.open(device, "C", "pull", ev.CallID, at)
		}
		if !hasStep(r, 7) && !hasStep(r, 4) {
			ev.Step = 4
			h.step(r, ev, at)
		}
	case "media.source-returned": // C: the new stream went silent (step 6 at A's end)
		r := h.running(device, "C", ev.CallID)
		if r == nil || hasStep(r, 7) {
			break // after step 7 C's own table reverts (handoff.reverted)
		}
		ev.Step = 6
		h.step(r, ev, at)
		h.finish(r, "abandoned", "the new device's stream stopped before it re-established with C (step 7): the previous device's stream plays again", at)
	case "handoff.overlap": // C, step 4
		r := h.running(device, "C", ev.CallID)
		if r == nil {
			r = h.open(device, "C", "pull", ev.CallID, at)
		}
		if !hasStep(r, 4) {
			h.step(r, ev, at)
		}
	case "handoff.reestablished": // C, step 7: the commit at C
		r := h.running(device, "C", ev.CallID)
		if r == nil {
			r = h.open(device, "C", "pull", ev.CallID, at)
		}
		r.info.To = ev.Peer
		h.step(r, ev, at)
		r.committed = at
	case "media.peer-moved": // C, step 11
		if r := h.running(device, "C", ev.CallID); r != nil {
			if !hasStep(r, 7) {
				// No re-establish: the peer itself moved (mobility,
				// claim steps 8-12), its new stream is not a pull.
				h.drop(r)
				break
			}
			h.step(r, ev, at)
			h.finish(r, "done", "", at)
		}
	case "handoff.reverted":
		if r := h.running(device, "C", ev.CallID); r != nil {
			h.step(r, ev, at)
			h.finish(r, "rolled-back", ev.Detail, at)
		}
	case "call.ended":
		for _, r := range h.records {
			if r.info.Device != device || r.info.CallID != ev.CallID || r.info.State != "running" {
				continue
			}
			switch r.info.Role {
			case "B":
				// The puller released B after it committed.
				h.step(r, ev, at)
				r.committed = at
				h.finish(r, "done", "", at)
			default:
				h.finish(r, "call-ended", ev.Detail, at)
			}
		}
	case "transfer.requested":
		r := h.open(device, "transferor", "transfer", ev.CallID, at)
		r.info.Peer = ev.Peer
		h.step(r, ev, at)
	case "transfer.received":
		r := h.open(device, "transferee", "transfer", ev.CallID, at)
		r.info.Peer = ev.Peer
		h.step(r, ev, at)
	case "transfer.replaced":
		r := h.open(device, "target", "transfer", ev.CallID, at)
		r.info.Peer = ev.Peer
		h.step(r, ev, at)
		r.committed = at
		h.finish(r, "done", "", at)
	case "transfer.done", "transfer.failed", "transfer.refused":
		r := h.runningKind(device, "transfer", ev.CallID)
		if r == nil {
			r = h.open(device, "transferee", "transfer", ev.CallID, at)
		}
		h.step(r, ev, at)
		state := strings.TrimPrefix(ev.Type, "transfer.")
		if state == "done" {
			r.committed = at
		}
		h.finish(r, state, ev.Detail, at)
	}
}

// referProgress records a REFER from a SIP phone (blind or attended,
// refer.go and attended.go): the gateway is the transferee, every sipfrag
// it reports to the phone a step, the final one its outcome. Every REFER
// outcome passes through notifyRefer, which calls this first.
func (h *handoffLog) referProgress(b *bridge, frag string, final bool) {
	b.mu.Lock()
	callID := b.p2pID
	peer := b.peer
	b.mu.Unlock()
	device := b.dev.identity()
	h.link(device, callID, b.sipCallID, b.leg)
	at := h.g.cfg.Now()
	h.publish(device, endpoint.Event{Time: at, Type: "transfer.refer", CallID: callID, Peer: peer, Detail: frag})
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.runningKind(device, "refer", callID)
	if r == nil {
		r = h.open(device, "transferee", "refer", callID, at)
		r.info.Peer = peer
	}
	h.step(r, endpoint.Event{Type: "refer.notify", Detail: frag}, at)
	if !final {
		return
	}
	state := "failed"
	if strings.HasPrefix(frag, "SIP/2.0 2") {
		state = "done"
		r.committed = at
	}
	h.finish(r, state, frag, at)
}

// offerTimeout is B's offer timer (handoff.TimerOffer): a round that
// offered the session and got no stop-audio within it goes back to active
// without an event.
var offerTimeout = handoff.DefaultTimeouts(0).Offer

// expireOffers ends the B records whose round only offered the session (a
// session query, `ctl sessions`, or a pull that took another call: B's
// offer timer ran out without a stop-audio), and the C records of a pull
// that never reached step 7 within as long. h.mu held.
func (h *handoffLog) expireOffers(now time.Time) {
	for _, r := range h.records {
		if r.info.State != "running" || now.Sub(r.info.Started) <= offerTimeout {
			continue
		}
		need, why := 0, ""
		switch r.info.Role {
		case "B":
			need, why = 5, "session offered, no stop-audio within B's offer timer (a session query, or another session was pulled)"
		case "C":
			need, why = 7, "the new device's stream was played, but it never re-established with C (its pull rolled back)"
		default:
			continue
		}
		reached := false
		for _, s := range r.info.Steps {
			reached = reached || s.Step == need
		}
		if !reached {
			h.finish(r, "not-taken", why, r.info.Started.Add(offerTimeout))
		}
	}
}

func (h *handoffLog) open(device, role, kind, callID string, at time.Time) *gwRecord {
	h.seq++
	r := &gwRecord{info: control.GatewayHandoff{
		HandoffInfo: endpoint.HandoffInfo{ID: fmt.Sprintf("g-%s-%d", role, h.seq), Kind: kind, CallID: callID,
			State: "running", Started: at, Steps: []endpoint.StepInfo{}},
		Device: device, Role: role,
	}}
	if role == "B" {
		r.info.From = device
	}
	h.records = append(h.records, r)
	if len(h.records) > recordsSize {
		h.records = h.records[1:]
	}
	return r
}

// restartWindow is how long after a C record ended done (step 11) a new
// stream on the call is the new device's restarted one (steps 10-12), not
// another pull. A pull that does start within it is still recorded, from
// its handoff.overlap or handoff.reestablished on.
const restartWindow = time.Second

// justMoved says whether device's C record of callID ended done within
// restartWindow before at. h.mu held.
func (h *handoffLog) justMoved(device, callID string, at time.Time) bool {
	for i := len(h.records) - 1; i >= 0; i-- {
		r := h.records[i]
		if r.info.Device == device && r.info.Role == "C" && r.info.CallID == callID {
			return r.info.State == "done" && r.info.Finished != nil && at.Sub(*r.info.Finished) < restartWindow
		}
	}
	return false
}

// drop removes r from the records. h.mu held.
func (h *handoffLog) drop(r *gwRecord) {
	h.records = slices.DeleteFunc(h.records, func(x *gwRecord) bool { return x == r })
}

// hasStep says whether r has a step numbered n.
func hasStep(r *gwRecord, n int) bool {
	for _, s := range r.info.Steps {
		if s.Step == n {
			return true
		}
	}
	return false
}

func (h *handoffLog) running(device, role, callID string) *gwRecord {
	for i := len(h.records) - 1; i >= 0; i-- {
		r := h.records[i]
		if r.info.Device == device && r.info.Role == role && r.info.CallID == callID && r.info.State == "running" {
			return r
		}
	}
	return nil
}

func (h *handoffLog) runningKind(device, kind, callID string) *gwRecord {
	for i := len(h.records) - 1; i >= 0; i-- {
		r := h.records[i]
		if r.info.Device == device && r.info.Kind == kind && r.info.CallID == callID && r.info.State == "running" {
			return r
		}
	}
	return nil
}

func (h *handoffLog) step(r *gwRecord, ev endpoint.Event, at time.Time) {
	title := ev.Type
	if ev.Detail != "" {
		title += ": " + ev.Detail
	}
	r.info.Steps = append(r.info.Steps, endpoint.StepInfo{Step: ev.Step, Title: title, At: at,
		SinceStartMS: ms(at.Sub(r.info.Started))})
}

func (h *handoffLog) finish(r *gwRecord, state, why string, at time.Time) {
	r.info.State = state
	r.info.Error = why
	if state == "done" {
		r.info.Error = ""
	}
	r.info.Finished = &at
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Handoffs is the gateway's GET /v1/handoffs: the handoffs every device
// ran (as A: pull by pickup code or Replaces, push), those where a device
// was B or C, and the transfers, oldest first, each with the SIP messages
// of its calls inside its window and its timings.
func (g *Gateway) Handoffs() []control.GatewayHandoff {
	g.hlog.linkBridges()
	var out []control.GatewayHandoff
	// A push a device ran (`ctl --endpoint DEV push`) is its own record,
	// role B; the B record its handoff.offered and handoff.muted events
	// build is the same move seen again, and is left out.
	pushes := map[string][]endpoint.HandoffInfo{}
	for _, d := range g.devices {
		ep := d.endpoint()
		if ep == nil {
			continue
		}
		for _, info := range ep.Handoffs() {
			out = append(out, g.hlog.fromEndpoint(d.identity(), info))
			if info.Kind == "push" {
				k := linkKey(d.identity(), info.CallID)
				pushes[k] = append(pushes[k], info)
			}
		}
	}
	g.hlog.mu.Lock()
	g.hlog.expireOffers(g.cfg.Now())
	recs := make([]gwRecord, 0, len(g.hlog.records))
	for _, r := range g.hlog.records {
		c := *r
		c.info.Steps = append([]endpoint.StepInfo(nil), r.info.Steps...)
		recs = append(recs, c)
	}
	g.hlog.mu.Unlock()
	for _, r := range recs {
		if r.info.Role == "B" && pushedBy(pushes[linkKey(r.info.Device, r.info.CallID)], r.info.Started) {
			continue
		}
		out = append(out, g.hlog.complete(r.info, r.committed))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	if out == nil {
		out = []control.GatewayHandoff{}
	}
	return out
}

// pushedBy says whether one of the device's pushes of the call was
// running at t (its B record started then).
func pushedBy(pushes []endpoint.HandoffInfo, t time.Time) bool {
	for _, p := range pushes {
		if !t.Before(p.Started) && (p.Finished == nil || !t.After(*p.Finished)) {
			return true
		}
	}
	return false
}

// Handoff is one of Handoffs by id; an error wrapping
// endpoint.ErrNoSuchHandoff (404) when there is none.
func (g *Gateway) Handoff(id string) (control.GatewayHandoff, error) {
	for _, h := range g.Handoffs() {
		if h.ID == id {
			return h, nil
		}
	}
	return control.GatewayHandoff{}, fmt.Errorf("%w: %q is not a handoff of this gateway", endpoint.ErrNoSuchHandoff, id)
}

// fromEndpoint completes a handoff a device ran itself (role A; a push:
// the device had the call, role B).
func (h *handoffLog) fromEndpoint(device string, info endpoint.HandoffInfo) control.GatewayHandoff {
	role := "A"
	if info.Kind == "push" {
		role = "B"
	}
	if info.Kind == "rebind" {
		role = "M"
	}
	var committed time.Time
	for _, s := range info.Steps {
		// Step 7: C accepted A, the call is A's from then on
		// (docs/handoff.md).
		if s.Step == 7 {
			committed = s.At
		}
	}
	if info.Steps == nil {
		info.Steps = []endpoint.StepInfo{}
	}
	return h.complete(control.GatewayHandoff{HandoffInfo: info, Device: device, Role: role}, committed)
}

// complete adds the SIP side and the timings.
func (h *handoffLog) complete(r control.GatewayHandoff, committed time.Time) control.GatewayHandoff {
	if !committed.IsZero() {
		c := ms(committed.Sub(r.Started))
		r.TimeToCommitMS = &c
	}
	end := h.g.cfg.Now()
	if r.Finished != nil {
		end = *r.Finished
	}
	ids, l := h.linkOf(r.Device, r.CallID)
	r.SIPCallIDs = ids
	r.SIPMessages = h.sip.between(ids, r.Started.Add(-SIPWindowBefore), end.Add(SIPWindowAfter))
	if r.Role != "C" && r.Kind != "rebind" {
		// C may be another device of this gateway (a trunk's caller
		// whose call moves between alice's devices): the gateway relays
		// to C on that device's leg.
		l = h.otherLeg(r.Device, r.CallID)
	}
	if l != nil {
		gap := ms(l.longestGap(r.Started, end, r.Finished == nil))
		r.GapHeardByCMS = &gap
	}
	return r
}

// otherLeg is the SIP leg of another device of this gateway on the same
// P2P call (C behind the gateway), nil when there is none.
func (h *handoffLog) otherLeg(device, id string) *leg {
	if id == "" {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.calls {
		if c.p2pID == id && c.device != device && c.leg != nil {
			return c.leg
		}
	}
	return nil
}
