package gateway

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/p2p/wire"
	"github.com/baton-voice/baton/sipbridge/sdp"
)

// Bridge directions.
const (
	dirFromSIP = "sip-to-p2p" // a SIP phone called a P2P user
	dirToSIP   = "p2p-to-sip" // a P2P endpoint called the SIP device
)

// CallInfo is one bridged call, for the control API.
type CallInfo struct {
	SIPCallID string              `json:"sip_call_id"`
	P2PCallID string              `json:"p2p_call_id"`
	Direction string              `json:"direction"`
	Device    string              `json:"device"`
	Peer      string              `json:"peer"`
	State     string              `json:"state"`
	Codec     string              `json:"codec,omitempty"`
	SIPMedia  string              `json:"sip_media,omitempty"`
	Started   time.Time           `json:"started"`
	SIPLeg    LegInfo             `json:"sip_leg"`
	P2PLeg    *endpoint.MediaInfo `json:"p2p_leg,omitempty"`
}

// LegInfo is the SIP leg's packet counters.
type LegInfo struct {
	Local       string `json:"local"`
	Remote      string `json:"remote,omitempty"`
	Received    uint64 `json:"packets_received"`
	Sent        uint64 `json:"packets_sent"`
	WrongSource uint64 `json:"wrong_source"`
	Malformed   uint64 `json:"malformed"`
	WrongPT     uint64 `json:"wrong_payload_type"`
	Events      uint64 `json:"telephone_events"`
	// Relayed counts frames passed between the SIP leg and the P2P call
	// without decoding or encoding (same codec both sides), both ways.
	Relayed uint64 `json:"frames_relayed"`
	// DTMF digits (dtmf.go): pressed on the phone and passed to the P2P
	// party, played to the phone from it, and dropped either way.
	DTMFReceived uint64 `json:"dtmf_received"`
	DTMFSent     uint64 `json:"dtmf_sent"`
	DTMFDropped  uint64 `json:"dtmf_dropped"`
	// SRTP is the SDES-SRTP suite of the leg (srtp.go), "" for plain
	// RTP; SRTPAuthFailed and SRTPReplayed count packets from the phone
	// dropped as not authentic and as replays.
	SRTP           string `json:"srtp,omitempty"`
	SRTPAuthFailed uint64 `json:"srtp_auth_failed"`
	SRTPReplayed   uint64 `json:"srtp_replayed"`
	// RTCP is the leg's RTCP/SRTCP (rtcp.go): counters and the far
	// end's reports.
	RTCP *RTCPInfo `json:"rtcp,omitempty"`
}

// bridge is one call between a SIP dialog and a P2P call of a device.
type bridge struct {
	g         *Gateway
	dev       *device
	dir       string
	sipCallID string
	peer      string
	leg       *leg
	sdp       *sdp.Session
	started   time.Time

	// events from the device's endpoint, in order
	evMu  sync.Mutex
	evq   []endpoint.Event
	evSig chan struct{}

	ended     chan struct{} // closed once: the call is over
	endOnce   sync.Once
	endReason string

	// reinv is the state of re-INVITEs inside the SIP dialog (dialog.go).
	reinv reInvites

	mu       sync.Mutex
	p2pID    string
	state    string
	codec    string
	answered bool
	// transferred is set once a REFER moved the P2P call onto another
	// P2P call of the device (refer.go).
	transferred bool

	// DTMF sends of this call, in order (dtmf.go)
	dtmfWork dtmfWork
	// referOut receives the NOTIFYs of a REFER the gateway sent the
	// phone (`baton ctl transfer` by the P2P party, transferee.go); nil
	// when none is in progress.
	referOut chan referProgress
}

func newBridge(g *Gateway, d *device, dir string) (*bridge, error) {
	l, err := openLeg(g.cfg.MediaIP)
	if err != nil {
		return nil, err
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	b := &bridge{
		g: g, dev: d, dir: dir, leg: l, started: g.cfg.Now(), state: "trying",
		sdp:   sdp.NewSession(binary.BigEndian.Uint64(id[:]) >> 2),
		evSig: make(chan struct{}, 1),
		ended: make(chan struct{}),
	}
	if err := l.initSRTP(g.cfg.SIPSRTP); err != nil {
		_ = l.Close()
		return nil, err
	}
	l.onDTMF(b.dtmfToP2P)
	return b, nil
}

func (b *bridge) post(ev endpoint.Event) {
	if ev.Type == endpoint.EventDTMF {
		b.dtmfFromP2P(ev) // dtmf.go
		return
	}
	if ev.Type == endpoint.EventHeld || ev.Type == endpoint.EventResumed {
		b.g.onP2PHold(b, ev) // dialog.go
		return
	}
	b.evMu.Lock()
	b.evq = append(b.evq, ev)
	b.evMu.Unlock()
	select {
	case b.evSig <- struct{}{}:
	default:
	}
}

func (b *bridge) nextEvents() []endpoint.Event {
	b.evMu.Lock()
	defer b.evMu.Unlock()
	q := b.evq
	b.evq = nil
	return q
}

// end marks the call over (once) with a reason; hangup also tells the P2P
// side.
func (b *bridge) end(reason string) {
	b.endOnce.Do(func() {
		b.mu.Lock()
		b.endReason = reason
		b.state = "ended"
		b.mu.Unlock()
		close(b.ended)
	})
}

// hangup ends the P2P call (which, through its call.ended event, ends the
// SIP side) and the bridge.
func (b *bridge) hangup(reason string) {
	b.mu.Lock()
	id, xfer := b.p2pID, b.transferred
	b.mu.Unlock()
	// After a transfer the P2P call is relayed to the transfer target
	// (refer.go): the SIP side ending does not end it.
	if ep := b.dev.endpoint(); ep != nil && id != "" && !xfer {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = ep.Hangup(ctx, id)
		cancel()
	}
	b.end(reason)
}

func (b *bridge) setState(s string) {
	b.mu.Lock()
	b.state = s
	b.mu.Unlock()
}

func (b *bridge) info() CallInfo {
	b.mu.Lock()
	ci := CallInfo{SIPCallID: b.sipCallID, P2PCallID: b.p2pID, Direction: b.dir, Device: b.dev.identity(), Peer: b.peer,
		State: b.state, Codec: b.codec, Started: b.started}
	b.mu.Unlock()
	l := b.leg
	l.mu.Lock()
	ci.SIPLeg.Remote = ""
	if l.remote.IsValid() {
		ci.SIPLeg.Remote = l.remote.String()
	}
	l.mu.Unlock()
	ci.SIPLeg.Local = l.LocalAddr().String()
	ci.SIPLeg.Received = l.stats.Received.Load()
	ci.SIPLeg.Sent = l.stats.Sent.Load()
	ci.SIPLeg.WrongSource = l.stats.WrongSource.Load()
	ci.SIPLeg.Malformed = l.stats.Malformed.Load()
	ci.SIPLeg.WrongPT = l.stats.WrongPT.Load()
	ci.SIPLeg.Events = l.stats.Events.Load()
	ci.SIPLeg.Relayed = l.stats.Passed.Load()
	ci.SIPLeg.DTMFReceived = l.dtmf.received.Load()
	ci.SIPLeg.DTMFSent = l.dtmf.tx.sent.Load()
	ci.SIPLeg.DTMFDropped = l.dtmf.dropped.Load()
	ci.SIPLeg.SRTP = l.srtpSuite()
	ci.SIPLeg.SRTPAuthFailed = l.stats.SRTPAuthFailed.Load()
	ci.SIPLeg.SRTPReplayed = l.stats.SRTPReplayed.Load()
	ci.SIPLeg.RTCP = l.rtcpInfo()
	if ep := b.dev.endpoint(); ep != nil && ci.P2PCallID != "" {
		if c, err := ep.Call(ci.P2PCallID); err == nil {
			ci.P2PLeg = c.Media
		}
	}
	return ci
}

// local is our side of the SIP leg's SDP.
func (b *bridge) local() sdp.Local {
	ip := b.g.cfg.MediaIP
	if a, err := netip.ParseAddr(b.g.cfg.Advertise); err == nil {
		ip = a
	}
	return sdp.Local{Addr: ip, Port: int(b.leg.LocalAddr().Port()), Codecs: b.g.sipCodecs, PTime: 20, DTMF: true, Direction: sdp.SendRecv,
		SRTP: b.g.cfg.SIPSRTP, Key: b.leg.srtpKey(), RTCPPort: b.leg.rtcpPort(), RTCPMux: true}
}

// useAnswer points the SIP leg at what the far SDP chose (the answer to
// our offer, or the offer we answered).
func (b *bridge) useSDP(o *sdp.Offer, chosen sdp.Codec, signal netip.Addr) error {
	codec, ok := b.g.cfg.Codecs.Lookup(strings.ToUpper(chosen.Name))
	if !ok {
		return fmt.Errorf("gateway: %w: %s", sdp.ErrNoCommonCodec, chosen.Name)
	}
	// SDES-SRTP (srtp.go): the far side's key, or plain RTP, as the
	// policy allows; a refused description is 488 to the caller.
	far, secure, err := b.sdp.Remote(o, b.g.cfg.SIPSRTP)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if err := b.leg.setSRTP(far, secure); err != nil {
		return err
	}
	var remote netip.AddrPort
	if o.Port > 0 && o.Addr.IsValid() && !o.Addr.IsUnspecified() {
		remote = netip.AddrPortFrom(o.Addr, uint16(o.Port))
	}
	// The far side receives unless its SDP is sendonly or inactive (its
	// hold offer, or its answer to ours): RFC 3264 §6.1.
	recvs := o.Direction == sdp.SendRecv || o.Direction == sdp.RecvOnly || o.Direction == sdp.DirectionUnknown
	b.leg.setRemote(codec, chosen.PT, o.TelephoneEventPT, remote, signal, recvs)
	// A phone on hold (or holding with a=inactive) sends nothing: no
	// media timeout for that (leg.expectMedia).
	b.leg.expectMedia(o.Direction != sdp.RecvOnly && o.Direction != sdp.Inactive)
	b.leg.setRTCP(o, codec.Descriptor().ClockRate) // rtcp.go
	b.mu.Lock()
	b.codec = codec.Descriptor().Name
	b.mu.Unlock()
	return nil
}

// firstCodec is the first real codec of an SDP body (the answer's choice).
func firstCodec(o *sdp.Offer) (sdp.Codec, bool) {
	for _, c := range o.Codecs {
		if !strings.EqualFold(c.Name, "telephone-event") && c.ClockRate > 0 {
			return c, true
		}
	}
	return sdp.Codec{}, false
}

// sipStatus maps how a P2P call failed to a SIP final response.
func sipStatus(result, reason string) (int, string) {
	switch wire.ErrorCode(result) {
	case wire.CodeBusy:
		return sip.StatusBusyHere, "Busy Here"
	case wire.CodeOffline:
		return sip.StatusTemporarilyUnavailable, "Temporarily Unavailable"
	case wire.CodeDeclined:
		return sip.StatusGlobalDecline, "Decline"
	case wire.CodeNotFound:
		return sip.StatusNotFound, "Not Found"
	case wire.CodeForbidden, wire.CodeIdentityMismatch:
		return sip.StatusForbidden, "Forbidden"
	case wire.CodeUnsupported:
		return sip.StatusNotAcceptableHere, "Not Acceptable Here"
	case wire.CodeTimeout:
		return sip.StatusRequestTimeout, "Request Timeout"
	}
	switch result {
	case "declined":
		return sip.StatusGlobalDecline, "Decline"
	case "cancelled":
		return sip.StatusRequestTerminated, "Request Terminated"
	}
	return sip.StatusInternalServerError, "Server Error: " + reason
}

// dialStatus maps a DialWith error to a SIP final response.
func dialStatus(err error) (int, string) {
	switch {
	case errors.Is(err, endpoint.ErrUnknownPeer), errors.Is(err, endpoint.ErrInvalidTarget):
		return sip.StatusNotFound, "Not Found"
	case errors.Is(err, endpoint.ErrOffline), errors.Is(err, endpoint.ErrUnreachable):
		return sip.StatusTemporarilyUnavailable, "Temporarily Unavailable"
	case errors.Is(err, endpoint.ErrBusy):
		return sip.StatusBusyHere, "Busy Here"
	case errors.Is(err, endpoint.ErrNoCodec):
		return sip.StatusNotAcceptableHere, "Not Acceptable Here"
	case errors.Is(err, endpoint.ErrForbidden):
		return sip.StatusForbidden, "Forbidden"
	case errors.Is(err, ErrNothingToPickUp), errors.Is(err, endpoint.ErrNothingToPull):
		return sip.StatusNotFound, "No Call To Pick Up"
	case errors.Is(err, ErrNoReplacedDialog):
		return sip.StatusCallTransactionDoesNotExists, "Dialog Ended Or Taken By Another Device"
	case errors.Is(err, endpoint.ErrHandoffFailed):
		return sip.StatusTemporarilyUnavailable, "Pickup Failed"
	}
	return sip.StatusInternalServerError, "Server Error"
}

// p2pCode maps a SIP final response of the phone to the code the P2P
// caller sees.
func p2pCode(status int) wire.ErrorCode {
	switch {
	case status == sip.StatusBusyHere || status == 600:
		return wire.CodeBusy
	case status == sip.StatusNotFound || status == sip.StatusTemporarilyUnavailable || status == 410:
		return wire.CodeOffline
	case status == sip.StatusForbidden:
		return wire.CodeForbidden
	case status == sip.StatusNotAcceptableHere || status == 415:
		return wire.CodeUnsupported
	case status == sip.StatusRequestTimeout:
		return wire.CodeTimeout
	}
	return wire.CodeDeclined
}

// inboundCall bridges a new INVITE from an authenticated SIP account to
// the P2P user or device its Request-URI names. It returns once the
// INVITE transaction is over (final response sent, 2xx acknowledged).
func (g *Gateway) inboundCall(user string, req *sip.Request, tx sip.ServerTransaction) {
	d := g.devices[user]
	log := g.log.With("sip_call_id", req.CallID().Value(), "device", d.identity())
	ep := d.waitOnline(3 * time.Second)
	if ep == nil {
		respond(tx, req, sip.StatusForbidden, "Register first")
		return
	}
	// Pickup code or INVITE with Replaces: take a call instead of dialling
	// (a phone's, never a trunk's).
	var take *take
	if d.trunk == nil {
		var code int
		var reason string
		take, code, reason = g.takeover(ep, d, req)
		if code != 0 {
			respond(tx, req, code, reason)
			return
		}
	}
	target, err := g.callTarget(d, req.Recipient.User)
	number := ""
	if d.trunk == nil && take == nil {
		if tr, n, ok := g.dialPlan(req.Recipient.User); ok {
			target, number, err = tr, n, nil
		}
	}
	if take != nil {
		target, err = "pickup", nil
	}
	if err != nil {
		respond(tx, req, sip.StatusNotFound, "Not Found")
		return
	}
	if len(req.Body()) == 0 {
		respond(tx, req, sip.StatusNotAcceptableHere, "SDP offer required")
		return
	}
	offer, err := sdp.ParseOffer(req.Body())
	if err != nil {
		log.Info("bad SDP offer", "err", err)
		respond(tx, req, sip.StatusBadRequest, badSDP(err))
		return
	}
	b, err := newBridge(g, d, dirFromSIP)
	if err != nil {
		respond(tx, req, sip.StatusServiceUnavailable, "No media port")
		return
	}
	b.sipCallID = req.CallID().Value()
	b.peer = target
	answer, chosen, err := b.sdp.Answer(offer, b.local())
	if err == nil {
		c, _ := firstCodec(chosen)
		err = b.useSDP(offer, c, sourceIP(req))
	}
	if err != nil {
		_ = b.leg.Close()
		log.Info("SDP offer not acceptable", "err", err)
		respond(tx, req, sip.StatusNotAcceptableHere, notAcceptable(err))
		return
	}
	ds, err := g.inbound.ReadInvite(req, tx)
	if err != nil {
		_ = b.leg.Close()
		respond(tx, req, sip.StatusBadRequest, "Bad INVITE")
		return
	}
	defer ds.Close()
	if !g.addBridge(b) {
		_ = b.leg.Close()
		_ = ds.Respond(sip.StatusServiceUnavailable, "Shutting down", nil)
		return
	}
	defer g.removeBridge(b)
	_ = ds.Respond(sip.StatusTrying, "Trying", nil)

	acked := make(chan error, 1)
	answered := false
	answerPhone := func() {
		answered = true
		b.setState("active")
		b.mu.Lock()
		b.answered = true
		b.mu.Unlock()
		res := sip.NewSDPResponseFromRequest(ds.InviteRequest, answer)
		res.AppendHeader(g.contactFor(req)) // our Contact for the dialog's transport (Gateway.contactFor)
		// Blocks until the ACK (retransmitting the 200).
		go func() { acked <- ds.WriteResponse(res) }()
	}

	ctx, cancel := context.WithTimeout(g.ctx, 10*time.Second)
	// The phone giving up (CANCEL, or BYE once a pickup answered it) stops
	// the dial or the pull: a pull not yet committed rolls back and the
	// call stays where it was (issue 9 §3, the desk phone hangs up
	// mid-pull).
	stopWatch := context.AfterFunc(ds.Context(), cancel)
	var call endpoint.CallInfo
	if take != nil {
		// Answered before the pull (pickup.go): a failure then is a BYE.
		call, err = g.takeCall(ctx, take, b, answerPhone)
	} else {
		call, err = ep.DialWith(ctx, target, endpoint.CallOptions{Source: b.leg, Sink: b.leg, Number: number})
	}
	stopWatch()
	cancel()
	if err != nil && ds.Context().Err() != nil {
		_ = b.leg.Close()
		why := "SIP CANCEL"
		if answered {
			why = "SIP BYE" // a pickup's phone hung up mid-pull
		}
		log.Info("the phone gave up before the call was set up", "target", target, "reason", why, "err", err)
		b.end(why)
		return
	}
	if err != nil {
		_ = b.leg.Close()
		code, reason := dialStatus(err)
		log.Info("P2P dial failed", "target", target, "err", err, "status", code, "answered", answered)
		if answered {
			// RFC 3326: the BYE says what the final response would have.
			bctx, bcancel := context.WithTimeout(g.ctx, 5*time.Second)
			if berr := byeWithReason(bctx, ds, code, reason); berr != nil {
				log.Info("BYE after the failed pull", "err", berr)
			}
			bcancel()
		} else {
			_ = ds.Respond(code, reason, nil)
		}
		b.end(err.Error())
		return
	}
	b.mu.Lock()
	b.p2pID = call.ID
	b.peer = call.Peer
	b.mu.Unlock()
	d.claim(call.ID, b)
	defer d.release(call.ID)
	log = log.With("p2p_call_id", call.ID, "peer", call.Peer)
	// Per-call steps at debug, so that info costs one line per call end
	// (docs/benchmarks.md §16: logging was a few % of a call's CPU).
	log.Debug("bridging SIP call to P2P")

	media := time.NewTicker(time.Second)
	defer media.Stop()
	for {
		select {
		case <-b.evSig:
			for _, ev := range b.nextEvents() {
				switch ev.Type {
				case "call.ringing":
					b.setState("ringing")
					_ = ds.Respond(sip.StatusRinging, "Ringing", nil)
				case "call.active":
					if !answered {
						answerPhone()
					}
				case "call.ended":
					ci, _ := ep.Call(call.ID)
					if !answered {
						code, reason := sipStatus(ci.Result, ci.EndReason)
						_ = ds.Respond(code, reason, nil)
					} else if ds.LoadState() != sip.DialogStateEnded {
						bctx, bcancel := context.WithTimeout(g.ctx, 5*time.Second)
						_ = byeServer(bctx, ds) // over the phone's connection on TCP/TLS (flow.go)
						bcancel()
					}
					log.Info("call ended", "reason", ev.Detail)
					b.end(ev.Detail)
					return
				}
			}
		case err := <-acked:
			if err != nil {
				log.Info("no ACK for our 200; hanging up", "err", err)
				b.hangup("no ACK")
			}
		case <-ds.Context().Done():
			// CANCEL before the answer, BYE after it.
			why := "SIP CANCEL"
			if answered {
				why = "SIP BYE"
			}
			b.hangup(why)
			// Wait for the P2P end to be reported (its event), bounded.
			select {
			case <-b.evSig:
				b.nextEvents()
			case <-time.After(5 * time.Second):
			}
			log.Info("call ended", "reason", why)
			return
		case <-media.C:
			if answered && b.leg.silentFor(g.cfg.Now()) > g.cfg.MediaTimeout {
				log.Info("SIP leg silent; ending the call", "timeout", g.cfg.MediaTimeout)
				b.hangup("SIP media timeout")
			}
		case <-g.ctx.Done():
			b.hangup("gateway shutting down")
			return
		}
	}
}

// outboundCall rings the SIP phones of a device for an incoming P2P call:
// an INVITE to every registered contact, the first 2xx wins and the others
// get CANCEL (RFC 3261 §16.7 forking, done by the B2BUA).
func (g *Gateway) outboundCall(d *device, ring endpoint.Event) {
	ep := d.endpoint()
	if ep == nil {
		return
	}
	b, err := newBridge(g, d, dirToSIP)
	if err != nil {
		g.log.Warn("no media port for an incoming P2P call", "err", err)
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			_ = ep.Decline(context.Background(), ring.CallID, wire.CodeInternal, "gateway has no media port")
		}()
		return
	}
	b.p2pID, b.peer = ring.CallID, ring.Peer
	d.claim(ring.CallID, b)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer d.release(ring.CallID)
		g.runOutbound(ep, b)
	}()
}

type fork struct {
	dc     *sipgo.DialogClientSession
	cancel context.CancelFunc // CANCELs this fork while it rings
	err    error
	code   int
}

func (g *Gateway) runOutbound(ep *endpoint.Endpoint, b *bridge) {
	d := b.dev
	log := g.log.With("p2p_call_id", b.p2pID, "device", d.identity(), "peer", b.peer)
	decline := func(code wire.ErrorCode, why string) {
		_ = b.leg.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = ep.Decline(ctx, b.p2pID, code, why)
		cancel()
		b.end(why)
	}
	contacts := g.bindings.Contacts(d.acct.SIPUser)
	toUser := d.acct.SIPUser
	var auth sipgo.AnswerOptions
	if d.trunk != nil {
		// A call out through a trunk: one INVITE to the provider for the
		// number the P2P caller asked for.
		ci, _ := ep.Call(b.p2pID)
		target, err := d.trunk.outboundURI(ci.Number)
		if err != nil {
			decline(wire.CodeNotFound, err.Error())
			return
		}
		contacts, toUser = []string{target.String()}, ci.Number
		auth = sipgo.AnswerOptions{Username: d.trunk.cfg.AuthUser, Password: d.trunk.cfg.AuthPassword}
		log = log.With("trunk", d.trunk.cfg.Name, "number", ci.Number)
	}
	if len(contacts) == 0 {
		decline(wire.CodeOffline, "no registered SIP phone")
		return
	}
	offer, _, err := b.sdp.Offer(b.local())
	if err != nil {
		decline(wire.CodeInternal, err.Error())
		return
	}
	ringCtx, stopRinging := context.WithCancel(g.ctx)
	defer stopRinging()
	results := make(chan *fork, len(contacts))
	var forks []*fork
	for _, c := range contacts {
		var uri sip.Uri
		if err := sip.ParseUri(c, &uri); err != nil {
			continue
		}
		req := sip.NewRequest(sip.INVITE, uri)
		req.SetBody(offer)
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		from := &sip.FromHeader{DisplayName: b.peer, Address: sip.Uri{Scheme: "sip", User: sipUser(b.peer), Host: g.contact.Address.Host, Port: g.contact.Address.Port}, Params: sip.NewParams()}
		from.Params.Add("tag", sip.GenerateTagN(16))
		if d.trunk != nil && d.trunk.cfg.AuthUser != "" {
			from.Address.User = d.trunk.cfg.AuthUser // the provider knows its account
		}
		req.AppendHeader(from)
		to := sip.Uri{Scheme: "sip", User: toUser, Host: g.contact.Address.Host, Port: g.contact.Address.Port}
		if d.trunk != nil {
			to = uri
		}
		req.AppendHeader(&sip.ToHeader{Address: to, Params: sip.NewParams()})
		req.AppendHeader(sip.NewHeader("P-Asserted-Identity", fmt.Sprintf("\"%s\" <sip:%s@%s>", b.peer, sipUser(b.peer), g.contact.Address.Host)))
		reused := false
		if d.trunk == nil {
			reused = g.routeToPhone(d.acct.SIPUser, c, req) // flow.go
		}
		dc, err := g.outbound.WriteInvite(g.ctx, req)
		if err != nil {
			log.Info("INVITE to a contact failed", "contact", c, "err", err)
			continue
		}
		pinFlow(dc, reused)
		fctx, fcancel := context.WithCancel(ringCtx)
		defer fcancel()
		f := &fork{dc: dc, cancel: fcancel}
		forks = append(forks, f)
		g.mu.Lock()
		g.bridges[req.CallID().Value()] = b
		g.mu.Unlock()
		defer func(id string) {
			g.mu.Lock()
			if g.bridges[id] == b {
				delete(g.bridges, id)
			}
			g.mu.Unlock()
		}(req.CallID().Value())
		go func() {
			err := dc.WaitAnswer(fctx, auth)
			f.err = err
			var de *sipgo.ErrDialogResponse
			if errors.As(err, &de) {
				f.code = de.Res.StatusCode
			}
			results <- f
		}()
	}
	if len(forks) == 0 {
		decline(wire.CodeOffline, "no SIP phone reachable")
		return
	}
	b.sipCallID = forks[0].dc.InviteRequest.CallID().Value()
	log.Debug("ringing SIP phones", "contacts", len(forks))
	b.setState("ringing")

	var winner *fork
	best := 0
	pending := len(forks)
	for pending > 0 && winner == nil {
		select {
		case f := <-results:
			pending--
			if f.err == nil {
				winner = f
				break
			}
			if f.code > 0 && (best == 0 || f.code == sip.StatusBusyHere) {
				best = f.code
			}
		case <-b.evSig:
			for _, ev := range b.nextEvents() {
				if ev.Type == "call.ended" {
					// The P2P caller gave up: CANCEL every fork.
					stopRinging()
					for pending > 0 {
						<-results
						pending--
					}
					_ = b.leg.Close()
					b.end("caller cancelled")
					log.Info("P2P caller cancelled; SIP forks cancelled")
					return
				}
			}
		}
	}
	if winner == nil {
		code := wire.CodeOffline
		if best > 0 {
			code = p2pCode(best)
		}
		decline(code, fmt.Sprintf("SIP phone answered %d", best))
		return
	}
	// CANCEL the losers: their WaitAnswer sends it and returns.
	for _, f := range forks {
		if f != winner {
			f.cancel()
		}
	}
	dc := winner.dc
	b.sipCallID = dc.InviteRequest.CallID().Value()
	g.mu.Lock()
	g.bridges[b.sipCallID] = b
	g.mu.Unlock()
	defer g.removeBridge(b)
	ackCtx, cancel := context.WithTimeout(g.ctx, 5*time.Second)
	err = dc.Ack(ackCtx)
	cancel()
	if err != nil {
		log.Warn("ACK failed", "err", err)
	}
	b.useDialog(dc) // for re-INVITEs and REFER NOTIFYs in this dialog
	answer, err := sdp.ParseOffer(dc.InviteResponse.Body())
	var chosen sdp.Codec
	if err == nil {
		var ok bool
		if chosen, ok = firstCodec(answer); !ok {
			err = sdp.ErrNoCommonCodec
		}
	}
	if err == nil {
		src, _ := netip.ParseAddrPort(dc.InviteResponse.Source())
		err = b.useSDP(answer, chosen, src.Addr().Unmap())
	}
	if err != nil {
		log.Info("SIP answer unusable; hanging up", "err", err)
		g.byeClient(dc)
		decline(wire.CodeUnsupported, "SIP phone's answer: "+err.Error())
		return
	}
	ctx, cancel2 := context.WithTimeout(g.ctx, 5*time.Second)
	err = ep.AnswerWith(ctx, b.p2pID, endpoint.CallOptions{Source: b.leg, Sink: b.leg})
	cancel2()
	if err != nil {
		log.Info("P2P answer failed; hanging up the SIP leg", "err", err)
		g.byeClient(dc)
		_ = b.leg.Close()
		b.end("P2P answer failed")
		return
	}
	b.mu.Lock()
	b.answered = true
	b.state = "active"
	b.mu.Unlock()
	log.Debug("SIP phone answered; call bridged", "codec", chosen.Name)
	g.carryDialog(b, dc, log)
}

// carryDialog carries a bridged call on a dialog the gateway created (a
// call to a phone, or one pushed to it) until one side ends it: a P2P end
// sends BYE, a BYE from the phone hangs up the P2P call, a silent SIP leg
// ends both.
func (g *Gateway) carryDialog(b *bridge, dc *sipgo.DialogClientSession, log *slog.Logger) {
	media := time.NewTicker(time.Second)
	defer media.Stop()
	for {
		select {
		case <-b.evSig:
			for _, ev := range b.nextEvents() {
				if ev.Type == "call.ended" {
					if dc.LoadState() != sip.DialogStateEnded {
						g.byeClient(dc)
					}
					b.end(ev.Detail)
					log.Log(context.Background(), g.endLevel(b), "call ended", "reason", ev.Detail)
					return
				}
			}
		case <-dc.Context().Done():
			b.hangup("SIP BYE")
			log.Log(context.Background(), g.endLevel(b), "call ended", "reason", "SIP BYE")
			return
		case <-media.C:
			if b.leg.silentFor(g.cfg.Now()) > g.cfg.MediaTimeout {
				log.Info("SIP leg silent; ending the call", "timeout", g.cfg.MediaTimeout)
				g.byeClient(dc)
				b.hangup("SIP media timeout")
			}
		case <-g.ctx.Done():
			g.byeClient(dc)
			b.hangup("gateway shutting down")
			return
		}
	}
}

// endLevel is the level of a dialog-out bridge's "call ended": debug
// when the P2P caller is another device of this gateway, whose own
// bridge logs the call at info (one line per call, issue 8 §7).
func (g *Gateway) endLevel(b *bridge) slog.Level {
	b.mu.Lock()
	peer := b.peer
	b.mu.Unlock()
	if g.ownDevice(peer) {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// ownDevice reports whether id ("user/device") is one of this gateway's
// devices (accounts and trunks; fixed after New).
func (g *Gateway) ownDevice(id string) bool {
	return g.deviceIDs[id]
}

func (g *Gateway) byeClient(dc *sipgo.DialogClientSession) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = dc.Bye(ctx)
}
