package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/p2p/wire"
)

// The RFC 4235 dialog event package: the gateway is the notifier for the
// P2P calls of a user's devices, so that a SIP phone of the same user can
// watch them (a busy lamp) and take one with INVITE/Replaces (replaces.go).
//
// How a P2P session appears as a SIP dialog (the mapping Replaces is
// matched back with, see docs/transfers.md):
//   - call-id is the P2P call (session) ID, the same on every device the
//     call moves to;
//   - local-tag is dialogTag(call ID, owner), the owner being the device
//     that has the call (user/device), so the dialog of a call changes
//     when the call moves to another device, as a SIP dialog would;
//   - remote-tag is dialogTag(call ID, peer), the far party's identity;
//   - state is "confirmed": the P2P session query lists only active
//     sessions (an early dialog is never published, so a Replaces naming
//     one matches nothing and gets 481, as RFC 3891 §3 asks for early
//     dialogs this UA did not initiate);
//   - direction (RFC 4235 §4.1.2) is "initiator" when the owner's side
//     placed the call and "recipient" when the far party did, from the
//     session list's initiator field (wire SessionParams.Initiator: the
//     device knows whether its call was outgoing or incoming, a pulled
//     call keeps what it was pulled with; the gateway's own devices answer
//     for the calls it bridges the same way); left out when the device
//     does not say (an endpoint older than the field), as §4.1.2 allows.
//
// The P2P protocol has no push of session changes, so each subscription
// polls the watched devices with session queries (steps 2-3 of the
// handoff, which commit nothing) every dialogPoll and sends NOTIFY when
// what it sees changes.

// Dialog event package constants.
const (
	dialogInfoNS   = "urn:ietf:params:xml:ns:dialog-info"
	dialogInfoType = "application/dialog-info+xml"
	dialogEvent    = "dialog"
	// dialogDefaultExpires is the package's default subscription
	// duration (RFC 4235 §3.3).
	dialogDefaultExpires = 3600 * time.Second
	// dialogPoll is how often a subscription asks the watched devices
	// for their sessions.
	dialogPoll = time.Second
	// maxDialogInfo bounds a dialog-info document we parse.
	maxDialogInfo = 64 << 10
	// maxSubsPerDevice bounds the subscriptions of one SIP account: each
	// polls the user's devices.
	maxSubsPerDevice = 4
)

// ErrBadDialogInfo means a dialog-info document is malformed or breaks
// RFC 4235.
var ErrBadDialogInfo = errors.New("gateway: bad dialog-info document")

// DialogInfo is an RFC 4235 §4.1 dialog-info document.
type DialogInfo struct {
	XMLName xml.Name `xml:"urn:ietf:params:xml:ns:dialog-info dialog-info"`
	// Version counts the notifications of one subscription from 0.
	Version uint32 `xml:"version,attr"`
	// State is "full" (the whole state) or "partial".
	State string `xml:"state,attr"`
	// Entity is the watched user's URI.
	Entity  string   `xml:"entity,attr"`
	Dialogs []Dialog `xml:"dialog"`
}

// Dialog is one <dialog> element (RFC 4235 §4.1.2).
type Dialog struct {
	ID        string       `xml:"id,attr"`
	CallID    string       `xml:"call-id,attr,omitempty"`
	LocalTag  string       `xml:"local-tag,attr,omitempty"`
	RemoteTag string       `xml:"remote-tag,attr,omitempty"`
	Direction string       `xml:"direction,attr,omitempty"`
	State     DialogState  `xml:"state"`
	Local     *Participant `xml:"local,omitempty"`
	Remote    *Participant `xml:"remote,omitempty"`
}

// DialogState is a dialog's <state> (RFC 4235 §3.7.1), with the optional
// event that caused it.
type DialogState struct {
	Event string `xml:"event,attr,omitempty"`
	Value string `xml:",chardata"`
}

// Participant is a <local> or <remote> element; only its identity is used.
type Participant struct {
	Identity string `xml:"identity"`
}

var dialogStates = []string{"trying", "proceeding", "early", "confirmed", "terminated"}

// Marshal encodes the document with its XML declaration.
func (d *DialogInfo) Marshal() ([]byte, error) {
	body, err := xml.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("gateway: dialog-info: %w", err)
	}
	return append([]byte(xml.Header), append(body, '\n')...), nil
}

// ParseDialogInfo decodes and checks a dialog-info document: the root in
// the RFC 4235 namespace, a version, state full or partial, an entity,
// and for each dialog an id, a known state and direction.
func ParseDialogInfo(b []byte) (*DialogInfo, error) {
	if len(b) > maxDialogInfo {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrBadDialogInfo, len(b), maxDialogInfo)
	}
	var d DialogInfo
	dec := xml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadDialogInfo, err)
	}
	if d.State != "full" && d.State != "partial" {
		return nil, fmt.Errorf("%w: state %q, want full or partial", ErrBadDialogInfo, d.State)
	}
	if d.Entity == "" {
		return nil, fmt.Errorf("%w: no entity", ErrBadDialogInfo)
	}
	for i := range d.Dialogs {
		x := &d.Dialogs[i]
		if x.ID == "" {
			return nil, fmt.Errorf("%w: dialog %d has no id", ErrBadDialogInfo, i)
		}
		x.State.Value = strings.TrimSpace(x.State.Value)
		if !slices.Contains(dialogStates, x.State.Value) {
			return nil, fmt.Errorf("%w: dialog %q: state %q", ErrBadDialogInfo, x.ID, x.State.Value)
		}
		if x.Direction != "" && x.Direction != "initiator" && x.Direction != "recipient" {
			return nil, fmt.Errorf("%w: dialog %q: direction %q", ErrBadDialogInfo, x.ID, x.Direction)
		}
		if x.Local != nil {
			x.Local.Identity = strings.TrimSpace(x.Local.Identity)
		}
		if x.Remote != nil {
			x.Remote.Identity = strings.TrimSpace(x.Remote.Identity)
		}
	}
	return &d, nil
}

// dialogTag derives the SIP tag under which a party of a P2P call appears
// in dialog-info and Replaces: the same call and identity always give the
// same tag, so the gateway can match a Replaces header back to a session
// by recomputing it (docs/transfers.md).
func dialogTag(callID, identity string) string {
	sum := sha256.Sum256([]byte("baton/dialog-tag\x00" + callID + "\x00" + identity))
	return hex.EncodeToString(sum[:8])
}

// dialogView is one P2P session seen as a SIP dialog of its owner.
type dialogView struct {
	CallID string
	Owner  string // the device that has the call (user/device): the local side
	Peer   string // the far party (user/device): the remote side
	State  string // confirmed, or early
	// Direction is RFC 4235's: initiator (the owner's side placed the
	// call), recipient, or "" unknown.
	Direction string
	// Ours says the gateway initiated the dialog (for an early dialog,
	// RFC 3891 §3); P2P sessions are never ours.
	Ours bool
}

func (v dialogView) localTag() string  { return dialogTag(v.CallID, v.Owner) }
func (v dialogView) remoteTag() string { return dialogTag(v.CallID, v.Peer) }

func (g *Gateway) policy() handoff.Policy {
	if g.cfg.Policy != nil {
		return g.cfg.Policy
	}
	return handoff.SameUser{}
}

// identityURI is a SIP URI for a P2P identity at the gateway.
func (g *Gateway) identityURI(identity string) string {
	return "sip:" + sipUser(identity) + "@" + g.contact.Address.Host
}

// sessionsOf asks each online device of ep's user other than skip (and
// only the device only, when set) for its sessions. A device whose query
// failed is reported in failed, so that a watcher keeps what it knew of
// it instead of reporting its calls ended.
func sessionsOf(ctx context.Context, ep *endpoint.Endpoint, skip, only string) (views []dialogView, failed map[string]error) {
	failed = map[string]error{}
	for _, bud := range ep.Buddies() {
		if !bud.Self {
			continue
		}
		for _, dev := range bud.Devices {
			id := bud.User + "/" + dev.Device
			if id == skip || (only != "" && id != only) || dev.Status == string(wire.StatusOffline) {
				continue
			}
			qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			sessions, err := ep.Sessions(qctx, dev.Device)
			cancel()
			if err != nil {
				failed[id] = err
				continue
			}
			for _, s := range sessions {
				views = append(views, dialogView{CallID: s.CallID, Owner: id, Peer: s.Peer, State: "confirmed", Direction: dialogDirection(s.Initiator)})
			}
		}
	}
	slices.SortFunc(views, func(a, b dialogView) int { return strings.Compare(a.CallID+a.Owner, b.CallID+b.Owner) })
	return views, failed
}

// dialogDirection maps the session list's initiator to RFC 4235 §4.1.2:
// the owner's side placed it (initiator), the far party did (recipient),
// or "" when the device did not say.
func dialogDirection(initiator string) string {
	switch initiator {
	case wire.InitiatorSelf:
		return "initiator"
	case wire.InitiatorPeer:
		return "recipient"
	}
	return ""
}

// notifier holds the live dialog-event subscriptions.
type notifier struct {
	poll time.Duration
	// closing is closed when the gateway stops: every subscription sends
	// its final NOTIFY (RFC 6665 §4.2.2, reason=noresource).
	closing   chan struct{}
	closeOnce sync.Once

	mu   sync.Mutex
	subs map[string]*subscription // by dialogKey
}

func newNotifier() *notifier {
	return &notifier{poll: dialogPoll, subs: map[string]*subscription{}, closing: make(chan struct{})}
}

// shutdown ends every subscription with a final NOTIFY and waits for them,
// at most until ctx ends.
func (n *notifier) shutdown(ctx context.Context) {
	n.closeOnce.Do(func() { close(n.closing) })
	n.mu.Lock()
	subs := make([]*subscription, 0, len(n.subs))
	for _, s := range n.subs {
		subs = append(subs, s)
	}
	n.mu.Unlock()
	for _, s := range subs {
		select {
		case <-s.done:
		case <-ctx.Done():
			return
		}
	}
}

// published finds a dialog some subscription has notified, for a
// Replaces from a user who cannot query its owner (another user).
func (n *notifier) published(callID, localTag, remoteTag string) (dialogView, bool) {
	n.mu.Lock()
	subs := make([]*subscription, 0, len(n.subs))
	for _, s := range n.subs {
		subs = append(subs, s)
	}
	n.mu.Unlock()
	for _, s := range subs {
		s.mu.Lock()
		last := s.last
		s.mu.Unlock()
		for _, v := range last {
			if v.CallID == callID && v.localTag() == localTag && v.remoteTag() == remoteTag {
				return v, true
			}
		}
	}
	return dialogView{}, false
}

// count is the number of live subscriptions.
func (n *notifier) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.subs)
}

func dialogKey(callID, remoteTag, localTag string) string {
	return callID + "\x00" + remoteTag + "\x00" + localTag
}

// subscription is one dialog-event subscription (RFC 6665 §4.2): a dialog
// of its own, owned by its run goroutine.
type subscription struct {
	g       *Gateway
	dev     *device // the subscriber's device
	watch   string  // the watched user, or user/device
	entity  string
	key     string
	callID  string
	local   sip.FromHeader // our side (the SUBSCRIBE's To, with our tag)
	remote  sip.ToHeader   // the subscriber (the SUBSCRIBE's From)
	target  sip.Uri        // the subscriber's Contact
	eventID string         // the Event header's id parameter
	refresh chan time.Duration
	ended   chan struct{} // closed by an un-SUBSCRIBE
	done    chan struct{} // closed when run returns
	endOnce sync.Once

	mu   sync.Mutex
	last []dialogView // what the last NOTIFY said was live
}

// parseEvent splits an Event header value into package and id parameter
// (RFC 6665 §8.2.1).
func parseEvent(v string) (pkg, id string) {
	parts := strings.Split(v, ";")
	pkg = strings.ToLower(strings.TrimSpace(parts[0]))
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), "id") {
			id = strings.TrimSpace(val)
		}
	}
	return pkg, id
}

// acceptsDialogInfo reports whether a SUBSCRIBE's Accept headers allow
// application/dialog-info+xml (no Accept means the package default,
// RFC 6665 §4.1.2).
func acceptsDialogInfo(req *sip.Request) bool {
	hs := req.GetHeaders("Accept")
	if len(hs) == 0 {
		return true
	}
	for _, h := range hs {
		for _, t := range strings.Split(h.Value(), ",") {
			t, _, _ = strings.Cut(t, ";")
			switch strings.ToLower(strings.TrimSpace(t)) {
			case dialogInfoType, "application/*", "*/*":
				return true
			}
		}
	}
	return false
}

// onSubscribe serves SUBSCRIBE for the dialog package: a new subscription
// (digest-authenticated, same user only) or a refresh / un-SUBSCRIBE in an
// existing one.
func (g *Gateway) onSubscribe(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil {
		if tag, ok := to.Params.Get("tag"); ok {
			g.refreshSubscription(req, tx, tag)
			return
		}
	}
	user, ok := g.authenticate(req, tx, false)
	if !ok {
		return
	}
	d := g.devices[user]
	log := g.log.With("sip_call_id", req.CallID().Value(), "device", d.identity())
	allowEvents := sip.NewHeader("Allow-Events", dialogEvent)
	ev := req.GetHeader("Event")
	if ev == nil {
		respond(tx, req, sip.StatusBadRequest, "Event header required", allowEvents)
		return
	}
	pkg, eventID := parseEvent(ev.Value())
	if pkg != dialogEvent {
		// RFC 6665 §8.3.2: 489 Bad Event, with what we do support.
		respond(tx, req, 489, "Bad Event", allowEvents)
		return
	}
	if !acceptsDialogInfo(req) {
		respond(tx, req, sip.StatusNotAcceptable, "Not Acceptable", sip.NewHeader("Accept", dialogInfoType))
		return
	}
	watch, err := dialTarget(req.Recipient.User)
	if err != nil {
		respond(tx, req, sip.StatusNotFound, "Not Found")
		return
	}
	// Only devices of the watched user may watch its calls: the same
	// policy that decides session queries between P2P devices.
	dec, err := g.policy().Decide(g.ctx, handoff.Request{Kind: handoff.KindQuery, Requester: d.identity(), Owner: watch})
	if err != nil || !dec.Allow {
		log.Info("dialog subscription refused by policy", "watch", watch, "reason", dec.Reason, "err", err)
		respond(tx, req, sip.StatusForbidden, "Forbidden")
		return
	}
	expires, code, reason := g.subscribeExpires(req)
	if code != 0 {
		var hs []sip.Header
		if code == sip.StatusIntervalToBrief {
			hs = append(hs, sip.NewHeader("Min-Expires", strconv.Itoa(int(g.cfg.MinExpires/time.Second))))
		}
		respond(tx, req, code, reason, hs...)
		return
	}
	contact, from, to := req.Contact(), req.From(), req.To()
	var fromTag string
	if from != nil {
		fromTag, _ = from.Params.Get("tag")
	}
	if contact == nil || fromTag == "" || to == nil {
		respond(tx, req, sip.StatusBadRequest, "SUBSCRIBE needs a Contact, a To and a From tag")
		return
	}
	if d.waitOnline(3*time.Second) == nil {
		respond(tx, req, sip.StatusForbidden, "Register first")
		return
	}
	tag := sip.GenerateTagN(16)
	s := &subscription{g: g, dev: d, watch: watch, eventID: eventID, callID: req.CallID().Value(),
		entity: "sip:" + sipUser(watch) + "@" + g.contact.Address.Host,
		target: contact.Address, refresh: make(chan time.Duration, 4), ended: make(chan struct{}), done: make(chan struct{})}
	s.local = sip.FromHeader{DisplayName: to.DisplayName, Address: to.Address, Params: sip.NewParams()}
	s.local.Params.Add("tag", tag)
	s.remote = sip.ToHeader{DisplayName: from.DisplayName, Address: from.Address, Params: from.Params.Clone()}
	s.key = dialogKey(s.callID, fromTag, tag)

	g.mu.Lock()
	closed := g.closed
	if !closed {
		g.wg.Add(1)
	}
	g.mu.Unlock()
	if closed {
		respond(tx, req, sip.StatusServiceUnavailable, "Shutting down")
		return
	}
	g.dialogs.mu.Lock()
	mine := 0
	for _, o := range g.dialogs.subs {
		if o.dev == d {
			mine++
		}
	}
	if mine >= maxSubsPerDevice {
		g.dialogs.mu.Unlock()
		g.wg.Done()
		log.Info("dialog subscription refused: too many", "subscriptions", mine)
		respond(tx, req, sip.StatusServiceUnavailable, "Too Many Subscriptions", sip.NewHeader("Retry-After", "60"))
		return
	}
	g.dialogs.subs[s.key] = s
	g.dialogs.mu.Unlock()
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	res.To().Params.Add("tag", tag)
	res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	res.AppendHeader(&g.contact)
	_ = tx.Respond(res)
	log.Info("dialog subscription", "watch", watch, "expires", expires)
	go s.run(expires)
}

// subscribeExpires reads a SUBSCRIBE's Expires: the package default when
// absent, 0 for a fetch or un-SUBSCRIBE, at least MinExpires (423) and at
// most MaxExpires otherwise.
func (g *Gateway) subscribeExpires(req *sip.Request) (time.Duration, int, string) {
	h := req.GetHeader("Expires")
	if h == nil {
		return min(dialogDefaultExpires, g.cfg.MaxExpires), 0, ""
	}
	n, err := strconv.Atoi(strings.TrimSpace(h.Value()))
	if err != nil || n < 0 {
		return 0, sip.StatusBadRequest, "Bad Expires header"
	}
	exp := time.Duration(n) * time.Second
	if exp > 0 && exp < g.cfg.MinExpires {
		return 0, sip.StatusIntervalToBrief, "Interval Too Brief"
	}
	return min(exp, g.cfg.MaxExpires), 0, ""
}

// refreshSubscription serves a SUBSCRIBE inside a subscription's dialog:
// its Call-ID and both tags (one of them ours, random) identify it, as for
// BYE. Expires: 0 ends it with a final NOTIFY (RFC 6665 §4.2.1.4).
func (g *Gateway) refreshSubscription(req *sip.Request, tx sip.ServerTransaction, ourTag string) {
	var fromTag string
	if from := req.From(); from != nil {
		fromTag, _ = from.Params.Get("tag")
	}
	g.dialogs.mu.Lock()
	s := g.dialogs.subs[dialogKey(req.CallID().Value(), fromTag, ourTag)]
	g.dialogs.mu.Unlock()
	if s == nil {
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Subscription Does Not Exist")
		return
	}
	if ev := req.GetHeader("Event"); ev == nil {
		respond(tx, req, sip.StatusBadRequest, "Event header required")
		return
	} else if pkg, id := parseEvent(ev.Value()); pkg != dialogEvent || id != s.eventID {
		respond(tx, req, 489, "Bad Event", sip.NewHeader("Allow-Events", dialogEvent))
		return
	}
	expires, code, reason := g.subscribeExpires(req)
	if code != 0 {
		respond(tx, req, code, reason)
		return
	}
	if expires == 0 {
		// Over from now on: a later SUBSCRIBE in it gets 481, while the
		// final NOTIFY is still on its way.
		g.dialogs.mu.Lock()
		delete(g.dialogs.subs, s.key)
		g.dialogs.mu.Unlock()
	}
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	res.AppendHeader(&g.contact)
	_ = tx.Respond(res)
	if expires == 0 {
		// The end must not be lost behind queued refreshes.
		s.endOnce.Do(func() { close(s.ended) })
		return
	}
	select {
	case s.refresh <- expires:
	default:
		// Refreshes faster than NOTIFYs go out: the subscription will
		// answer the ones queued; this one's 200 said when it expires.
	}
}

// run owns the subscription: the first NOTIFY now, one on every change
// seen by polling, one on every refresh, and a final one when it expires
// or is ended (RFC 6665 §4.2.2).
func (s *subscription) run(expires time.Duration) {
	g := s.g
	defer g.wg.Done()
	defer close(s.done)
	defer func() {
		g.dialogs.mu.Lock()
		delete(g.dialogs.subs, s.key)
		g.dialogs.mu.Unlock()
	}()
	log := g.log.With("sip_call_id", s.callID, "device", s.dev.identity(), "watch", s.watch)
	var version uint32
	var cseq uint32
	notify := func(views, gone []dialogView, state string) bool {
		s.mu.Lock()
		s.last = views
		s.mu.Unlock()
		cseq++
		err := s.notify(g.ctx, cseq, version, views, gone, state)
		version++
		if err != nil {
			log.Info("NOTIFY failed; subscription ended", "err", err)
			return false
		}
		return true
	}
	until := g.cfg.Now().Add(expires)
	subState := func() string {
		left := max(until.Sub(g.cfg.Now()), 0)
		return fmt.Sprintf("active;expires=%d", int(left/time.Second))
	}
	const ended = "terminated;reason=timeout"
	views := s.look(nil)
	if expires == 0 {
		// A fetch (RFC 6665 §4.4.3): the state once, and done.
		notify(views, nil, ended)
		return
	}
	if !notify(views, nil, subState()) {
		return
	}
	expiry := time.NewTimer(expires)
	defer expiry.Stop()
	poll := time.NewTicker(g.dialogs.poll)
	defer poll.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-g.dialogs.closing:
			notify(views, nil, "terminated;reason=noresource")
			return
		case <-s.ended:
			notify(views, nil, ended)
			log.Info("dialog subscription ended by the subscriber")
			return
		case exp := <-s.refresh:
			until = g.cfg.Now().Add(exp)
			expiry.Reset(exp)
			if !notify(views, nil, subState()) {
				return
			}
		case <-expiry.C:
			notify(views, nil, ended)
			log.Info("dialog subscription expired")
			return
		case <-poll.C:
			now := s.look(views)
			if slices.Equal(now, views) {
				continue
			}
			var gone []dialogView
			for _, v := range views {
				if !slices.Contains(now, v) {
					gone = append(gone, v)
				}
			}
			views = now
			if !notify(views, gone, subState()) {
				return
			}
		}
	}
}

// look asks the watched devices for their sessions; a device that could
// not be asked keeps what prev said of it.
func (s *subscription) look(prev []dialogView) []dialogView {
	ep := s.dev.endpoint()
	if ep == nil {
		return prev
	}
	only := ""
	if strings.Contains(s.watch, "/") {
		only = s.watch
	}
	views, failed := sessionsOf(s.g.ctx, ep, s.dev.identity(), only)
	for _, v := range prev {
		if _, ok := failed[v.Owner]; ok {
			views = append(views, v)
		}
	}
	if len(failed) > 0 {
		slices.SortFunc(views, func(a, b dialogView) int { return strings.Compare(a.CallID+a.Owner, b.CallID+b.Owner) })
	}
	return views
}

// document is the full-state dialog-info of live dialogs, and of the
// dialogs that ended since the last one (state terminated, once).
func (s *subscription) document(version uint32, views, gone []dialogView) *DialogInfo {
	doc := &DialogInfo{Version: version, State: "full", Entity: s.entity}
	add := func(v dialogView, state string) {
		doc.Dialogs = append(doc.Dialogs, Dialog{
			ID: v.localTag(), CallID: v.CallID, LocalTag: v.localTag(), RemoteTag: v.remoteTag(), Direction: v.Direction,
			State:  DialogState{Value: state},
			Local:  &Participant{Identity: s.g.identityURI(v.Owner)},
			Remote: &Participant{Identity: s.g.identityURI(v.Peer)},
		})
	}
	for _, v := range views {
		add(v, v.State)
	}
	for _, v := range gone {
		add(v, "terminated")
	}
	return doc
}

// notify sends one NOTIFY in the subscription's dialog and waits for its
// final response; anything but 2xx ends the subscription (RFC 6665
// §4.2.2: 481, a timeout, and other failures alike).
func (s *subscription) notify(ctx context.Context, cseq, version uint32, views, gone []dialogView, state string) error {
	body, err := s.document(version, views, gone).Marshal()
	if err != nil {
		return err
	}
	req := sip.NewRequest(sip.NOTIFY, s.target)
	from, to := s.local, s.remote
	req.AppendHeader(&from)
	req.AppendHeader(&to)
	callID := sip.CallIDHeader(s.callID)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.NOTIFY})
	event := dialogEvent
	if s.eventID != "" {
		event += ";id=" + s.eventID
	}
	req.AppendHeader(sip.NewHeader("Event", event))
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	req.AppendHeader(&s.g.contact)
	req.AppendHeader(sip.NewHeader("Content-Type", dialogInfoType))
	req.SetBody(body)
	nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := s.g.cli.Do(nctx, req)
	if err != nil {
		return fmt.Errorf("gateway: NOTIFY to %s: %w", s.target.String(), err)
	}
	if !res.IsSuccess() {
		return fmt.Errorf("gateway: NOTIFY to %s: %d %s", s.target.String(), res.StatusCode, res.Reason)
	}
	return nil
}
