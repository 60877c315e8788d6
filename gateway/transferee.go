package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/baton-voice/baton/p2p/endpoint"
)

// ErrBadSipfrag means a NOTIFY's message/sipfrag body does not start with
// a SIP status line (RFC 3420, RFC 3515 §2.4.5).
var ErrBadSipfrag = errors.New("gateway: bad message/sipfrag")

// ParseSipfrag reads the status line a refer subscription's NOTIFY carries
// (RFC 3515 §2.4.5: at least the status line of the response to the
// referred request): "SIP/2.0 200 OK" gives 200 and "OK". The reason may
// be empty; headers after the first line are ignored.
func ParseSipfrag(body []byte) (int, string, error) {
	line, _, _ := bytes.Cut(body, []byte("\n"))
	s := strings.TrimRight(string(line), "\r")
	rest, ok := strings.CutPrefix(s, "SIP/2.0 ")
	if !ok {
		return 0, "", fmt.Errorf("%w: %q is not a SIP/2.0 status line", ErrBadSipfrag, trimForLog(s))
	}
	code, reason, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(code)
	if err != nil || len(code) != 3 || n < 100 || n > 699 {
		return 0, "", fmt.Errorf("%w: status code %q", ErrBadSipfrag, trimForLog(code))
	}
	return n, strings.TrimSpace(reason), nil
}

// trimForLog keeps what an error quotes of a peer's bytes short.
func trimForLog(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// referProgress is one NOTIFY of the refer subscription a REFER to a phone
// created: the sipfrag status, and whether the subscription ended.
type referProgress struct {
	status int
	reason string
	final  bool
}

// onTransfer is the device endpoint's Config.OnTransfer: the P2P party of
// one of this device's calls asks it to call another person (`baton ctl
// transfer`, wire transfer-request). The device is a SIP phone, so the
// gateway asks the phone to do it: a REFER in the call's dialog (RFC 3515)
// with Refer-To naming the target at the gateway, and the result the
// phone's NOTIFYs report (message/sipfrag). The phone's INVITE to the
// target is an ordinary call through the gateway; once it is answered the
// transferor hangs up, and the phone's original dialog gets BYE.
func (d *device) onTransfer(ctx context.Context, offer endpoint.TransferOffer) (string, error) {
	if d.trunk != nil || offer.Replaces != nil {
		// A provider's caller, or an attended transfer: the gateway is
		// the transferee itself, and the SIP side sees nothing
		// (trunkxfer.go).
		return d.g.transferAnchored(ctx, d, offer)
	}
	return "", d.g.referPhone(ctx, d, offer)
}

// referPhone sends the REFER and waits for the final NOTIFY (onTransfer).
func (g *Gateway) referPhone(ctx context.Context, d *device, offer endpoint.TransferOffer) error {
	d.mu.Lock()
	b := d.calls[offer.CallID]
	d.mu.Unlock()
	if b == nil {
		return fmt.Errorf("%w: call %s has no SIP dialog at %s", endpoint.ErrNoSuchCall, offer.CallID, d.identity())
	}
	log := g.log.With("sip_call_id", b.sipCallID, "p2p_call_id", offer.CallID, "device", d.identity(), "transferor", offer.From, "target", offer.Target)
	progress := make(chan referProgress, 8)
	b.mu.Lock()
	busy := !b.answered || b.transferred || b.referOut != nil
	if !busy {
		b.referOut = progress
	}
	b.mu.Unlock()
	if busy {
		return fmt.Errorf("%w: the SIP call of %s is not answered, or already being transferred", endpoint.ErrBusy, offer.CallID)
	}
	defer func() {
		b.mu.Lock()
		b.referOut = nil
		b.mu.Unlock()
	}()
	b.reinv.mu.Lock()
	sess, target := b.reinv.session()
	b.reinv.mu.Unlock()
	if sess == nil {
		return fmt.Errorf("%w: the SIP dialog of %s is not confirmed", endpoint.ErrBusy, offer.CallID)
	}
	host := g.contact.Address.Host
	if g.contact.Address.Port > 0 {
		host += ":" + strconv.Itoa(g.contact.Address.Port)
	}
	req := sip.NewRequest(sip.REFER, target)
	req.AppendHeader(sip.NewHeader("Refer-To", "<sip:"+sipUser(offer.Target)+"@"+host+">"))
	req.AppendHeader(sip.NewHeader("Referred-By", "<sip:"+sipUser(offer.From)+"@"+host+">"))
	req.AppendHeader(g.contact.Clone())
	res, err := sess.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("%w: REFER to the SIP phone: %w", endpoint.ErrUnreachable, err)
	}
	switch {
	case res.StatusCode == sip.StatusForbidden:
		return fmt.Errorf("%w: the SIP phone answered the REFER %d %s", endpoint.ErrForbidden, res.StatusCode, res.Reason)
	case res.StatusCode >= 300:
		// 405, 501: a phone without REFER; 603: its user said no.
		return fmt.Errorf("%w: the SIP phone answered the REFER %d %s", endpoint.ErrDeclined, res.StatusCode, res.Reason)
	case res.StatusCode < 200:
		return fmt.Errorf("%w: the SIP phone answered the REFER %d", endpoint.ErrUnreachable, res.StatusCode)
	}
	log.Info("REFER accepted by the SIP phone", "status", res.StatusCode)
	for {
		select {
		case p := <-progress:
			log.Info("refer NOTIFY", "sipfrag", p.status, "reason", p.reason, "final", p.final)
			if p.status >= 200 && p.status < 300 {
				return nil
			}
			if p.status >= 300 {
				return fmt.Errorf("%w: the SIP phone's call to %s: SIP/2.0 %d %s", referError(p.status), offer.Target, p.status, p.reason)
			}
			if p.final {
				return fmt.Errorf("%w: the SIP phone ended the transfer at SIP/2.0 %d %s", endpoint.ErrDeclined, p.status, p.reason)
			}
		case <-b.ended:
			return fmt.Errorf("%w: the SIP call ended during the transfer", endpoint.ErrNoSuchCall)
		case <-ctx.Done():
			return fmt.Errorf("the SIP phone reported no result of the transfer: %w", ctx.Err())
		}
	}
}

// referError maps the final status of the phone's call to the target to
// the sentinel the transferor sees.
func referError(status int) error {
	switch status {
	case sip.StatusNotFound, 484, 604:
		return endpoint.ErrUnknownPeer
	case sip.StatusBusyHere, 600:
		return endpoint.ErrBusy
	case sip.StatusTemporarilyUnavailable, 410, sip.StatusServiceUnavailable:
		return endpoint.ErrOffline
	case sip.StatusForbidden:
		return endpoint.ErrForbidden
	case sip.StatusNotAcceptableHere, 415:
		return endpoint.ErrNoCodec
	}
	return endpoint.ErrDeclined
}

// onNotify takes the NOTIFYs of a refer subscription the gateway created
// with a REFER to a phone (RFC 3515 §2.4.4). The gateway subscribes to
// nothing else, so other events get 489 and NOTIFYs outside a bridged
// call's dialog 481.
func (g *Gateway) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	g.mu.Lock()
	b := g.bridges[req.CallID().Value()]
	g.mu.Unlock()
	ev := req.GetHeader("Event")
	if ev == nil || !strings.EqualFold(strings.TrimSpace(strings.SplitN(ev.Value(), ";", 2)[0]), "refer") {
		respond(tx, req, 489, "Bad Event", sip.NewHeader("Allow-Events", "dialog, refer"))
		return
	}
	var ch chan referProgress
	if b != nil {
		b.mu.Lock()
		ch = b.referOut
		b.mu.Unlock()
	}
	if ch == nil || !b.inDialog(req) {
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "No Refer Subscription")
		return
	}
	status, reason, err := ParseSipfrag(req.Body())
	if err != nil {
		g.log.Info("refer NOTIFY with a bad sipfrag", "sip_call_id", b.sipCallID, "err", err)
		respond(tx, req, sip.StatusBadRequest, "Bad message/sipfrag")
		return
	}
	final := false
	if st := req.GetHeader("Subscription-State"); st != nil {
		final = strings.HasPrefix(strings.ToLower(strings.TrimSpace(st.Value())), "terminated")
	}
	respond(tx, req, sip.StatusOK, "OK")
	p := referProgress{status: status, reason: reason, final: final}
	select {
	case ch <- p:
	default:
		// A phone NOTIFYing faster than referPhone reads: provisional
		// ones may be lost, a final one is not (it makes room).
		if p.final || p.status >= 200 {
			select {
			case <-ch:
			default:
			}
			select {
			case ch <- p:
			default:
			}
		}
	}
}

// inDialog reports whether a request from the phone belongs to the
// bridge's dialog: its From tag is the phone's, its To tag ours.
func (b *bridge) inDialog(req *sip.Request) bool {
	local, remote := b.dialogTags()
	from, _ := req.From().Params.Get("tag")
	to, _ := req.To().Params.Get("tag")
	return local != "" && from == remote && to == local
}
