package gateway

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// statusUnsupportedURIScheme is 416 (RFC 3261 §21.4.16); sipgo names no
// constant for it.
const statusUnsupportedURIScheme = 416

// sipsOverTLS guards every request handler: a request whose Request-URI
// (or To, for a REGISTER: the address being bound) is a sips: URI must
// have come over TLS. RFC 3261 §26.2.2: a SIPS URI asks that every hop to
// the resource be secured with TLS, and the hop that brought this request
// to us was not; we are that resource's server, so no later hop can make
// up for it. The request is refused with 416 Unsupported URI Scheme
// (§21.4.16, §8.2.2.1: the scheme is not one we take over this
// transport), the reason phrase naming the transport, rather than served
// as if it were sip:. An ACK has no response: it is dropped, uncounted
// (the ACK of our 416 to an INVITE is one).
func (g *Gateway) sipsOverTLS(h func(*sip.Request, sip.ServerTransaction)) func(*sip.Request, sip.ServerTransaction) {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if wantsSIPS(req) && !strings.EqualFold(req.Transport(), "TLS") {
			if req.Method == sip.ACK {
				return // e.g. the ACK of our 416: nothing to answer, not counted again
			}
			g.stats.sipsRefused.Add(1)
			g.log.Info("sips: request over a transport other than TLS refused", "method", req.Method,
				"transport", req.Transport(), "source", req.Source(), "request_uri", req.Recipient.String())
			respond(tx, req, statusUnsupportedURIScheme, "Unsupported URI Scheme: sips needs TLS, this request came over "+strings.ToUpper(req.Transport()))
			return
		}
		h(req, tx)
	}
}

// wantsSIPS reports a request for a sips: resource: its Request-URI, or
// for REGISTER its To (RFC 3261 §10.2: the address-of-record).
func wantsSIPS(req *sip.Request) bool {
	if req.Recipient.IsEncrypted() {
		return true
	}
	if req.Method == sip.REGISTER {
		if to := req.To(); to != nil && to.Address.IsEncrypted() {
			return true
		}
	}
	return false
}

// sipsContact is our Contact c (the TLS listener's) as a sips: URI. RFC
// 3261 §12.1.1, §8.1.1.8: a dialog created by a request with a sips:
// Request-URI (or top Record-Route) gets a sips: Contact. The transport
// parameter says tcp: sips: with transport=tcp is TLS over TCP (§26.2.2,
// §19.1.4; transport=tls is deprecated), which every stack maps to TLS.
func sipsContact(c *sip.ContactHeader) *sip.ContactHeader {
	s := c.Clone()
	s.Address.Scheme = "sips"
	s.Address.UriParams = sip.NewParams()
	s.Address.UriParams.Add("transport", "tcp")
	return s
}

// dialogWantsSIPS reports a request that makes a dialog secure (RFC 3261
// §12.1.1): a sips: Request-URI, or a sips: top Record-Route.
func dialogWantsSIPS(req *sip.Request) bool {
	if req.Recipient.IsEncrypted() {
		return true
	}
	if rr := req.RecordRoute(); rr != nil && rr.Address.IsEncrypted() {
		return true
	}
	return false
}
