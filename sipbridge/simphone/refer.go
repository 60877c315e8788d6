package simphone

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// ErrTransfer means a blind transfer did not complete: the REFER was
// refused, or the final NOTIFY reported a failure. The message says which.
var ErrTransfer = errors.New("simphone: transfer failed")

// ErrNoNotify means the REFER was accepted (202) but no NOTIFY of the
// refer subscription came within Config.NotifyTimeout (RFC 3515 §2.4.4
// wants one at once): the phone cannot tell how the transfer went. It
// wraps ErrTransfer.
var ErrNoNotify = fmt.Errorf("%w: REFER accepted but no NOTIFY followed", ErrTransfer)

// remoteTarget is the far side's Contact of a dialog's INVITE or its
// answer, or def when it has none.
func remoteTarget(m interface{ Contact() *sip.ContactHeader }, def sip.Uri) sip.Uri {
	if c := m.Contact(); c != nil {
		return *c.Address.Clone()
	}
	return def
}

// Refer blind-transfers the call (RFC 3515, RFC 5589 §6): it sends REFER
// with Refer-To target at the gateway inside the call's dialog, expects
// 202, then follows the refer subscription's NOTIFYs until the final one
// and returns its sipfrag status code (200 when the target answered). The
// phone does not hang up: the caller sends BYE when it is done. When the
// far side accepts the REFER but sends no NOTIFY within
// Config.NotifyTimeout, Refer returns 202 and ErrNoNotify.
func (c *Call) Refer(ctx context.Context, target string) (int, error) {
	if target == "" {
		return 0, fmt.Errorf("%w: no Refer-To target", ErrTransfer)
	}
	to := c.p.gw
	to.User = target
	req := sip.NewRequest(sip.REFER, c.remote)
	req.AppendHeader(sip.NewHeader("Refer-To", "<"+to.String()+">"))
	by := c.p.contact.Address
	req.AppendHeader(sip.NewHeader("Referred-By", "<"+by.String()+">"))
	req.AppendHeader(&c.p.contact)
	res, err := c.do(ctx, req)
	if err != nil {
		return 0, fmt.Errorf("simphone: REFER: %w", err)
	}
	if res.StatusCode != sip.StatusAccepted && res.StatusCode != sip.StatusOK {
		return res.StatusCode, fmt.Errorf("%w: REFER answered %d %s", ErrTransfer, res.StatusCode, res.Reason)
	}
	last := 0
	quiet := time.NewTimer(c.p.cfg.NotifyTimeout)
	defer quiet.Stop()
	for {
		select {
		case <-quiet.C:
			if last == 0 {
				return res.StatusCode, ErrNoNotify
			}
		case frag := <-c.notifies:
			if frag == "" {
				if last != sip.StatusOK {
					return last, fmt.Errorf("%w: the final NOTIFY said %d", ErrTransfer, last)
				}
				return last, nil
			}
			last = fragStatus(frag)
			if !quiet.Stop() {
				select {
				case <-quiet.C:
				default:
				}
			}
		case <-c.ended:
			return last, fmt.Errorf("%w: the call ended before the final NOTIFY", ErrTransfer)
		case <-ctx.Done():
			return last, fmt.Errorf("%w: waiting for the final NOTIFY: %w", ErrTransfer, ctx.Err())
		}
	}
}

// fragStatus is the status code of a sipfrag status line ("SIP/2.0 200
// OK"), 0 when it is not one.
func fragStatus(frag string) int {
	rest, ok := strings.CutPrefix(frag, "SIP/2.0 ")
	if !ok {
		return 0
	}
	code, _, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(code)
	if err != nil || n < 100 || n > 699 {
		return 0
	}
	return n
}

// onNotify answers the NOTIFYs of a REFER subscription (Event: refer) in
// one of the phone's calls and passes their sipfrag on to Refer.
func (p *Phone) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	p.callsMu.Lock()
	c := p.calls[req.CallID().Value()]
	p.callsMu.Unlock()
	ev := req.GetHeader("Event")
	if c == nil || ev == nil || !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ev.Value())), "refer") {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Subscription Does Not Exist", nil))
		return
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	frag, _, _ := strings.Cut(string(req.Body()), "\r\n")
	final := false
	if st := req.GetHeader("Subscription-State"); st != nil && strings.HasPrefix(strings.ToLower(strings.TrimSpace(st.Value())), "terminated") {
		final = true
	}
	send := func(s string) {
		select {
		case c.notifies <- s:
		default:
		}
	}
	send(strings.TrimSpace(frag))
	if final {
		send("")
	}
}
