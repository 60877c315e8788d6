package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// streamNet is an access server, users alice (a SIP desk phone) and bob (a
// P2P softphone), and `baton gateway` listening on TCP and TLS only (a
// self-signed certificate made here, trusted by the phones of the test).
type streamNet struct {
	dir     string
	srv     *accessServer
	gw      *proc
	gwAdmin string
	addrs   map[string]string // "tcp", "tls" -> the gateway's listener
	pool    *x509.CertPool
	pw      map[string]string
}

func startStreamGateway(t *testing.T) *streamNet {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	srv := startAccess(t, "access", dir, data, "127.0.0.1:0")
	pw := addUsers(t, dir, data, "alice", "bob")
	mustBaton(t, dir, "buddy", "add", "alice", "bob", "--data-dir", data)
	sipPw := writeFile(t, dir, "desk.pw", "desk-secret\n")
	ha1 := strings.TrimSpace(mustBaton(t, dir, "gateway", "ha1", "--user", "alice", "--realm", "baton", "--password-file", sipPw).stdout)
	certFile, keyFile, pool := writeSelfSigned(t, dir)
	cfg := writeFile(t, dir, "gateway.yaml", fmt.Sprintf(`access: %s
ca: %s
sip:
  udp: ""
  tcp: 127.0.0.1:0
  tls: 127.0.0.1:0
  tls_cert: %s
  tls_key: %s
  realm: baton
accounts:
  - sip_user: alice
    ha1: %s
    device: alice/desk
    password_file: %s
`, srv.addr, srv.ca, certFile, keyFile, ha1, pw["alice"]))
	gw := start(t, "gateway", dir, "gateway", "--config", cfg)
	tlsAddr := gw.waitStdout(t, gatewayTLS)[1]
	m := gw.waitStdout(t, gatewayReady)
	return &streamNet{dir: dir, srv: srv, gw: gw, gwAdmin: m[4], pool: pool, pw: pw,
		addrs: map[string]string{"tcp": m[2], "tls": tlsAddr}}
}

// streamPhone is a SIP phone on sipgo that talks to the gateway over one
// TCP or TLS connection it opens itself, like a phone behind NAT: its
// Contact names a port nobody listens on, so the gateway can reach it only
// over the connection it registered on. Its server answers what comes
// over that connection.
type streamPhone struct {
	t        *testing.T
	network  string // "tcp" or "tls"
	scheme   string // "sip" or "sips"
	gw       string
	ua       *sipgo.UserAgent
	cli      *sipgo.Client
	contact  sip.ContactHeader
	dialogs  *sipgo.DialogServerCache // calls the gateway places
	calls    *sipgo.DialogClientCache // calls the phone places
	invites  chan *sip.Request
	sessions chan *sipgo.DialogServerSession
	// reinvites gets the gateway's re-INVITEs (an INVITE with a To tag);
	// each is answered 200 with a=recvonly on reinvitePort.
	reinvites    chan *sip.Request
	reinvitePort atomic.Int32
}

func newStreamPhone(t *testing.T, network, scheme, gwAddr string, pool *x509.CertPool) *streamPhone {
	t.Helper()
	host, _, _ := net.SplitHostPort(gwAddr)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("baton-e2e-stream-phone"), sipgo.WithUserAgenTLSConfig(&tls.Config{RootCAs: pool, ServerName: host}))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	// A port that was free a moment ago: nothing listens there.
	_, dead, _ := net.SplitHostPort(freeAddr(t))
	deadPort, _ := strconv.Atoi(dead)
	p := &streamPhone{t: t, network: network, scheme: scheme, gw: gwAddr, ua: ua, cli: cli,
		invites: make(chan *sip.Request, 4), sessions: make(chan *sipgo.DialogServerSession, 4),
		reinvites: make(chan *sip.Request, 4)}
	p.contact = sip.ContactHeader{Address: sip.Uri{Scheme: scheme, User: "alice", Host: "127.0.0.1", Port: deadPort, UriParams: sip.NewParams()}}
	p.contact.Address.UriParams.Add("transport", uriTransport(scheme, network))
	p.dialogs = sipgo.NewDialogServerCache(cli, p.contact)
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		if tag, _ := req.To().Params.Get("tag"); tag != "" {
			body := fmt.Sprintf("v=0\r\no=e2e 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=recvonly\r\n", p.reinvitePort.Load())
			res := sip.NewResponseFromRequest(req, 200, "OK", []byte(body))
			res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			res.AppendHeader(&p.contact)
			_ = tx.Respond(res)
			p.reinvites <- req
			return
		}
		p.invites <- req
		ds, err := p.dialogs.ReadInvite(req, tx)
		if err != nil {
			return
		}
		p.sessions <- ds
		<-ds.Context().Done()
	})
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { _ = p.dialogs.ReadAck(req, tx) })
	p.calls = sipgo.NewDialogClientCache(cli, p.contact)
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		// A BYE in a call the gateway placed, or in one the phone placed.
		if err := p.dialogs.ReadBye(req, tx); err != nil {
			_ = p.calls.ReadBye(req, tx)
		}
	})
	t.Cleanup(func() { _ = srv.Close(); _ = ua.Close() })
	return p
}

// gwURI is a URI of the gateway for user ("" for the registrar) in the
// phone's scheme.
func (p *streamPhone) gwURI(user string) sip.Uri {
	host, port, _ := net.SplitHostPort(p.gw)
	n, _ := strconv.Atoi(port)
	u := sip.Uri{Scheme: p.scheme, User: user, Host: host, Port: n, UriParams: sip.NewParams()}
	u.UriParams.Add("transport", uriTransport(p.scheme, p.network))
	return u
}

// uriTransport is the transport parameter of a URI: tcp for sips: (TLS
// over TCP, RFC 3261 §26.2.2; transport=tls is deprecated), else network.
func uriTransport(scheme, network string) string {
	if scheme == "sips" {
		return "tcp"
	}
	return network
}

// register REGISTERs alice with digest and returns the final response.
func (p *streamPhone) register(ctx context.Context) *sip.Response {
	p.t.Helper()
	reg := sip.NewRequest(sip.REGISTER, p.gwURI(""))
	reg.AppendHeader(&sip.FromHeader{Address: p.gwURI("alice"), Params: sip.NewParams()})
	reg.From().Params.Add("tag", sip.GenerateTagN(8))
	reg.AppendHeader(&sip.ToHeader{Address: p.gwURI("alice"), Params: sip.NewParams()})
	reg.AppendHeader(&p.contact)
	reg.AppendHeader(sip.NewHeader("Expires", "600"))
	res, err := p.cli.Do(ctx, reg)
	if err != nil {
		p.t.Fatalf("REGISTER over %s: %v", p.network, err)
	}
	if res.StatusCode == sip.StatusUnauthorized {
		res, err = p.cli.DoDigestAuth(ctx, reg, res, sipgo.DigestAuth{Username: "alice", Password: "desk-secret"})
		if err != nil {
			p.t.Fatalf("REGISTER over %s with credentials: %v", p.network, err)
		}
	}
	return res
}

// answer waits for an INVITE from the gateway and answers it 200 with an
// SDP for media; it returns the request and the dialog.
func (p *streamPhone) answer(ctx context.Context, media *sipMedia) (*sip.Request, *sipgo.DialogServerSession) {
	p.t.Helper()
	var req *sip.Request
	var ds *sipgo.DialogServerSession
	select {
	case req = <-p.invites:
	case <-ctx.Done():
		p.t.Fatalf("the %s phone got no INVITE", p.network)
	}
	select {
	case ds = <-p.sessions:
	case <-ctx.Done():
		p.t.Fatalf("the %s phone could not read its INVITE", p.network)
	}
	answer := fmt.Sprintf("v=0\r\no=e2e 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n", media.addr().Port)
	if err := ds.Respond(sip.StatusRinging, "Ringing", nil); err != nil {
		p.t.Fatal(err)
	}
	if err := ds.RespondSDP([]byte(answer)); err != nil {
		p.t.Fatalf("200 over %s: %v", p.network, err)
	}
	return req, ds
}

// Issue 8 §2: calls from P2P to a phone registered over TCP or TLS. The
// phone's Contact names a port nobody listens on (a phone behind NAT):
// the gateway sends the INVITE over the connection the REGISTER came on
// (flow.go, RFC 5626 §5.3 in its simple form), with a Via and a Contact of
// that transport; the phone's 200, the gateway's ACK and BYE, and the
// phone's own BYE all travel over it. Audio is checked both ways, the
// call ended from each side once.
func TestE2EGatewayCallsStreamPhone(t *testing.T) {
	t.Parallel()
	n := startStreamGateway(t)
	rec := filepath.Join(n.dir, "bob.wav")
	bob := startPhone(t, n.dir, n.srv, "bob", "laptop", n.pw["bob"], phoneOpts{tone: 440, record: rec, autoAnswer: true})
	for i, network := range []string{"tls", "tcp"} {
		t.Run(network, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
			defer cancel()
			p := newStreamPhone(t, network, "sip", n.addrs[network], n.pool)
			if res := p.register(ctx); res.StatusCode != sip.StatusOK {
				t.Fatalf("REGISTER over %s: %d %s", network, res.StatusCode, res.Reason)
			}
			waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")
			st := mustCtl(t, n.dir, n.gwAdmin, "status").stdout
			if !strings.Contains(st, `"flow": "`+network+` 127.0.0.1:`) {
				t.Fatalf("gateway status shows no %s flow for the registration:\n%s", network, st)
			}

			// bob hangs up: the gateway's BYE reaches the phone.
			media := startSIPMedia(t, "127.0.0.1", 660)
			id := dial(t, n.dir, bob.admin, "alice/desk")
			inv, ds := p.answer(ctx, media)
			if via := inv.Via(); via == nil || !strings.EqualFold(via.Transport, network) {
				t.Errorf("the gateway's INVITE has Via %v, want transport %s", via, network)
			}
			if c := inv.Contact(); c == nil || !strings.EqualFold(c.Address.UriParams.GetOr("transport", ""), network) || c.Address.Port == 0 {
				t.Errorf("the gateway's INVITE has Contact %v, want one with transport=%s", c, network)
			} else if want := n.addrs[network]; net.JoinHostPort(c.Address.Host, strconv.Itoa(c.Address.Port)) != want {
				t.Errorf("the gateway's Contact %v names another listener than its %s one %s", c, network, want)
			}
			waitCallState(t, n.dir, bob.admin, id, "active")
			time.Sleep(3 * time.Second) // three seconds of conversation
			mustCtl(t, n.dir, bob.admin, "hangup", id)
			select {
			case <-ds.Context().Done():
			case <-ctx.Done():
				t.Fatalf("the %s phone got no BYE from the gateway", network)
			}
			waitNoActiveCall(t, n.dir, bob.admin)
			if rep := media.report(); rep.packets < 50 {
				t.Errorf("the %s phone heard only %d packets of bob", network, rep.packets)
			} else {
				t.Logf("%s phone heard %d packets, %d lost", network, rep.packets, rep.lost)
			}
			bobRec := rec
			if i > 0 {
				bobRec = strings.TrimSuffix(rec, ".wav") + fmt.Sprintf("-%d.wav", 2*i+1)
			}
			checkHears(t, bobRec, 660, 2*time.Second)

			// The phone hangs up: its BYE over the same connection ends
			// bob's call.
			media2 := startSIPMedia(t, "127.0.0.1", 660)
			id = dial(t, n.dir, bob.admin, "alice/desk")
			_, ds = p.answer(ctx, media2)
			waitCallState(t, n.dir, bob.admin, id, "active")
			eventually(t, pollTimeout, "the phone to hear bob", func() (bool, string) {
				r := media2.report()
				return r.packets >= 25, fmt.Sprint(r.packets)
			})
			if err := ds.Bye(ctx); err != nil {
				t.Fatalf("the %s phone's BYE: %v", network, err)
			}
			waitCallState(t, n.dir, bob.admin, id, "ended")
		})
	}
}

// Issue 8 §2, sips: URIs (RFC 3261 §26.2.2, §12.1.1). Over TLS: a REGISTER
// to sips:GATEWAY binding a sips: contact gets 200 with that contact; an
// INVITE to sips:bob@GATEWAY is answered with a sips: Contact; a P2P call
// to the phone comes as INVITE to its sips: contact with a sips: Contact;
// audio flows. The same sips: REGISTER and INVITE over TCP get 416
// Unsupported URI Scheme naming the transport, and count in
// baton_gateway_sips_refused_total.
func TestE2EGatewaySIPS(t *testing.T) {
	t.Parallel()
	n := startStreamGateway(t)
	rec := filepath.Join(n.dir, "bob.wav")
	bob := startPhone(t, n.dir, n.srv, "bob", "laptop", n.pw["bob"], phoneOpts{tone: 440, record: rec, autoAnswer: true})
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()

	// Over TCP: refused, whatever the credentials.
	tcp := newStreamPhone(t, "tcp", "sips", n.addrs["tcp"], n.pool)
	for _, method := range []sip.RequestMethod{sip.REGISTER, sip.INVITE} {
		req := sip.NewRequest(method, tcp.gwURI("bob"))
		if method == sip.REGISTER {
			req.Recipient = tcp.gwURI("")
		}
		req.SetTransport("TCP")
		req.AppendHeader(&sip.FromHeader{Address: tcp.gwURI("alice"), Params: sip.NewParams()})
		req.From().Params.Add("tag", sip.GenerateTagN(8))
		req.AppendHeader(&sip.ToHeader{Address: tcp.gwURI("alice"), Params: sip.NewParams()})
		req.AppendHeader(&tcp.contact)
		res, err := tcp.cli.Do(ctx, req)
		if err != nil {
			t.Fatalf("sips: %s over TCP: %v", method, err)
		}
		if res.StatusCode != 416 || !strings.Contains(res.Reason, "TLS") || !strings.Contains(res.Reason, "TCP") {
			t.Errorf("sips: %s over TCP: %d %q, want 416 naming TLS and TCP", method, res.StatusCode, res.Reason)
		}
	}
	metrics := httpGet(t, "http://"+n.gwAdmin+"/metrics")
	if !strings.Contains(metrics, "baton_gateway_sips_refused_total 2") {
		t.Errorf("metrics do not count the two refused sips: requests:\n%s\n%s", linesWith(metrics, "sips"), tail(metrics, 1500))
	}

	// Over TLS: taken, with sips: contacts.
	p := newStreamPhone(t, "tls", "sips", n.addrs["tls"], n.pool)
	res := p.register(ctx)
	if res.StatusCode != sip.StatusOK {
		t.Fatalf("sips: REGISTER over TLS: %d %s", res.StatusCode, res.Reason)
	}
	if c := res.Contact(); c == nil || c.Address.Scheme != "sips" {
		t.Fatalf("the 200 to a sips: REGISTER binds %v, want the phone's sips: contact", c)
	}
	waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")

	// The phone calls bob at sips:bob@GATEWAY.
	media := startSIPMedia(t, "127.0.0.1", 660)
	offer := fmt.Sprintf("v=0\r\no=e2e 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n", media.addr().Port)
	inv := sip.NewRequest(sip.INVITE, p.gwURI("bob"))
	inv.AppendHeader(&sip.FromHeader{Address: p.gwURI("alice"), Params: sip.NewParams()})
	inv.From().Params.Add("tag", sip.GenerateTagN(8))
	inv.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	inv.SetBody([]byte(offer))
	dc, err := p.calls.WriteInvite(ctx, inv)
	if err != nil {
		t.Fatal(err)
	}
	if err := dc.WaitAnswer(ctx, sipgo.AnswerOptions{Username: "alice", Password: "desk-secret"}); err != nil {
		t.Fatalf("sips: INVITE over TLS: %v", err)
	}
	if c := dc.InviteResponse.Contact(); c == nil || c.Address.Scheme != "sips" || c.Address.Port == 0 {
		t.Fatalf("the gateway's 200 to a sips: INVITE has Contact %v, want a sips: one (RFC 3261 §12.1.1)", c)
	}
	if err := dc.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	id := waitActiveWith(t, n.dir, bob.admin, "alice/desk", nil)
	time.Sleep(2 * time.Second)
	if err := dc.Bye(ctx); err != nil {
		t.Fatalf("BYE to the gateway's sips: Contact: %v", err)
	}
	waitCallState(t, n.dir, bob.admin, id, "ended")
	checkHears(t, rec, 660, time.Second)

	// The phone calls again and bob hangs up: the gateway's BYE in the
	// phone's dialog reaches it over its connection (its Contact names a
	// port nobody listens on).
	media3 := startSIPMedia(t, "127.0.0.1", 660)
	inv2 := sip.NewRequest(sip.INVITE, p.gwURI("bob"))
	inv2.AppendHeader(&sip.FromHeader{Address: p.gwURI("alice"), Params: sip.NewParams()})
	inv2.From().Params.Add("tag", sip.GenerateTagN(8))
	inv2.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	inv2.SetBody([]byte(fmt.Sprintf("v=0\r\no=e2e 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n", media3.addr().Port)))
	dc2, err := p.calls.WriteInvite(ctx, inv2)
	if err != nil {
		t.Fatal(err)
	}
	if err := dc2.WaitAnswer(ctx, sipgo.AnswerOptions{Username: "alice", Password: "desk-secret"}); err != nil {
		t.Fatalf("second sips: INVITE: %v", err)
	}
	if err := dc2.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	id = waitActiveWith(t, n.dir, bob.admin, "alice/desk", nil)
	// bob holds: the gateway's re-INVITE in the phone's dialog reaches it
	// over its connection too (flowDialog), not at its dead Contact.
	p.reinvitePort.Store(int32(media3.addr().Port))
	mustCtl(t, n.dir, bob.admin, "hold", id)
	select {
	case re := <-p.reinvites:
		if !strings.Contains(string(re.Body()), "a=sendonly") {
			t.Errorf("the gateway's hold re-INVITE offers no a=sendonly:\n%s", re.Body())
		}
	case <-time.After(pollTimeout):
		t.Fatal("the phone got no re-INVITE for bob's hold in the dialog it created")
	}
	mustCtl(t, n.dir, bob.admin, "hangup", id)
	select {
	case <-dc2.Context().Done():
	case <-ctx.Done():
		t.Fatal("the phone got no BYE from the gateway in the dialog it created")
	}
	if rep := media.report(); rep.packets < 25 {
		t.Errorf("the sips: phone heard only %d packets of bob", rep.packets)
	}

	// bob calls the phone: INVITE to its sips: contact, a sips: Contact.
	media2 := startSIPMedia(t, "127.0.0.1", 660)
	id = dial(t, n.dir, bob.admin, "alice/desk")
	req, ds := p.answer(ctx, media2)
	if req.Recipient.Scheme != "sips" {
		t.Errorf("the gateway's INVITE to a sips: contact has Request-URI %s", req.Recipient.String())
	}
	if c := req.Contact(); c == nil || c.Address.Scheme != "sips" {
		t.Errorf("the gateway's INVITE to a sips: contact has Contact %v, want a sips: one", c)
	}
	waitCallState(t, n.dir, bob.admin, id, "active")
	eventually(t, pollTimeout, "the sips: phone to hear bob", func() (bool, string) {
		r := media2.report()
		return r.packets >= 25, fmt.Sprint(r.packets)
	})
	if err := ds.Bye(ctx); err != nil {
		t.Fatalf("the sips: phone's BYE: %v", err)
	}
	waitCallState(t, n.dir, bob.admin, id, "ended")
}

// linesWith keeps the lines of s that contain sub.
func linesWith(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
