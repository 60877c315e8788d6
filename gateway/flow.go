package gateway

import (
	"context"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// flow is the connection a phone registered over (TCP or TLS): where its
// REGISTER came from. A call to the phone goes back over that connection
// while it is open, the simple form of RFC 5626 §5.3 ("the registrar ...
// forwards the request over the flow the registration came in on"): a
// phone behind NAT, or one whose Contact names no listening port (most
// TLS phones), cannot take a new connection from the gateway. With the
// connection gone, the request goes to the Contact (RFC 3261 §8.1.2), a
// new connection.
type flow struct {
	network string // "TCP" or "TLS"
	source  string // the phone's end of the connection, ip:port
}

// flowKey keys the flows by binding: one per registered contact of an AOR.
func flowKey(aor, contact string) string { return aor + "\x00" + contact }

// rememberFlow records (or, when the contact is removed, forgets) the
// connection req came over for the contact of aor. UDP has no flow: a
// UDP phone is reached at its Contact as before.
func (g *Gateway) rememberFlow(aor, contact string, req *sip.Request, removed bool) {
	network := strings.ToUpper(req.Transport())
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.flows == nil {
		g.flows = map[string]flow{}
	}
	k := flowKey(aor, contact)
	if removed || (network != "TCP" && network != "TLS") {
		delete(g.flows, k)
		return
	}
	g.flows[k] = flow{network: network, source: req.Source()}
}

// pruneFlows drops the flows whose contacts are no longer bound
// (Contact: *, expiry); the expiry loop calls it.
func (g *Gateway) pruneFlows() {
	g.mu.Lock()
	keys := make([]string, 0, len(g.flows))
	for k := range g.flows {
		keys = append(keys, k)
	}
	g.mu.Unlock()
	for _, k := range keys {
		aor, contact, _ := strings.Cut(k, "\x00")
		if g.bindings.ExpiresIn(aor, contact) > 0 {
			continue
		}
		g.mu.Lock()
		delete(g.flows, k)
		g.mu.Unlock()
	}
}

// openFlow is the flow of aor's contact when its connection is still open
// in sipgo's connection pool (keyed by the remote address; the accepted
// connection is in it until it closes).
func (g *Gateway) openFlow(aor, contact string) (flow, bool) {
	g.mu.Lock()
	f, ok := g.flows[flowKey(aor, contact)]
	g.mu.Unlock()
	if !ok || g.ua == nil {
		return flow{}, false
	}
	c, err := g.ua.TransportLayer().GetConnection(f.network, f.source)
	if err != nil {
		return flow{}, false
	}
	// GetConnection takes a reference on the connection (sipgo's pool
	// Get: "make sure you TryClose after finish"). We only asked whether
	// it is open; the request that goes over it takes its own. Kept, the
	// reference would hold the connection open past its last transaction
	// for ever, one more for every call routed over it.
	c.Ref(-1)
	return f, true
}

// routeToPhone addresses an INVITE to contact (one of aor's) and gives it
// our Via and Contact for the transport it goes over: the registration's
// connection when it is open (reused: true), else what the Contact says
// (its transport parameter, TLS for sips:). The Contact names the
// listener of that transport (transport=tcp or tls), sips: when the
// request is (RFC 3261 §8.1.1.8: a sips Request-URI needs a sips Contact),
// so the phone's in-dialog requests come back over it.
func (g *Gateway) routeToPhone(aor, contact string, req *sip.Request) (reused bool) {
	network := ""
	if f, ok := g.openFlow(aor, contact); ok {
		req.SetDestination(f.source)
		req.SetTransport(f.network)
		network, reused = f.network, true
	} else {
		network = strings.ToUpper(req.Transport()) // from the URI: transport=, sips:
		if req.Recipient.IsEncrypted() && network == "UDP" {
			network = "TLS" // RFC 3261 §26.2.2: sips: is TLS over TCP
		}
		req.SetTransport(network)
	}
	if c, ok := g.contacts[network]; ok {
		hdr := c.Clone()
		if req.Recipient.IsEncrypted() && network == "TLS" {
			hdr = sipsContact(c)
		}
		req.AppendHeader(hdr)
		via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: network,
			Host: c.Address.Host, Port: c.Address.Port, Params: sip.NewParams()}
		via.Params.Add("branch", sip.GenerateBranchN(16))
		via.Params.Add("rport", "")
		req.PrependHeader(via)
	}
	return reused
}

// pinFlow makes the in-dialog requests of a dialog whose INVITE reused the
// phone's connection (ACK, BYE, re-INVITE, INFO, NOTIFY) go where the 200
// came from, i.e. over that connection, not to the Contact (sipgo's
// RewriteContact, for this dialog only: a copy of the cache's UA).
func pinFlow(dc *sipgo.DialogClientSession, reused bool) {
	if !reused || dc == nil || dc.UA == nil {
		return
	}
	ua := *dc.UA
	ua.RewriteContact = true
	dc.UA = &ua
}

// byeServer sends BYE in a dialog the phone's INVITE made, as sipgo's
// DialogServerSession.Bye does, but on TCP and TLS (with no Record-Route)
// over the connection that INVITE came on (to its source) rather than to
// the phone's Contact, which a phone behind NAT or with no listener
// cannot take (the flow rule above, for the dialogs the phone created).
func byeServer(ctx context.Context, ds *sipgo.DialogServerSession) error {
	inv := ds.InviteRequest
	c := inv.Contact()
	if c == nil {
		return ds.Bye(ctx)
	}
	bye := sip.NewRequest(sip.BYE, *c.Address.Clone())
	overInviteFlow(inv, bye)
	return ds.WriteBye(ctx, bye)
}

// overInviteFlow makes req, a request of ours in the dialog that the
// phone's INVITE inv created, go the way inv came: its transport, and on
// TCP and TLS with no Record-Route the connection inv came on (its
// source) rather than the phone's Contact.
func overInviteFlow(inv, req *sip.Request) {
	req.SetTransport(inv.Transport())
	if network := strings.ToUpper(inv.Transport()); (network == "TCP" || network == "TLS") && inv.RecordRoute() == nil {
		req.SetDestination(inv.Source())
	}
}

// flowDialog is a dialog the phone's INVITE created, whose requests
// (re-INVITE and its ACK, INFO, NOTIFY, REFER) go over the phone's
// connection (overInviteFlow), as its BYE does.
type flowDialog struct {
	ds *sipgo.DialogServerSession
}

func (f flowDialog) Do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	overInviteFlow(f.ds.InviteRequest, req)
	return f.ds.Do(ctx, req)
}

func (f flowDialog) WriteRequest(req *sip.Request) error {
	overInviteFlow(f.ds.InviteRequest, req)
	return f.ds.WriteRequest(req)
}
