package gateway

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/baton-voice/baton/sipbridge/sdp"
)

// A phone registered over TCP whose Contact names a port nobody listens
// on is called over its REGISTER's connection (flow.go): the INVITE, the
// ACK and the gateway's BYE all reach it; the registration shows the
// flow, and once the phone's connection is gone the flow is not used.
func TestCallOverRegistrationFlow(t *testing.T) {
	t.Parallel()
	n := newTestNet(t, false, func(c *Config) { c.UDP, c.TCP = "", "127.0.0.1:0" })
	gwAddr := n.gw.Addr("tcp")
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("flow-phone"))
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
	dead, err := net.ListenPacket("udp", "127.0.0.1:0") // a port, then nothing on TCP there
	if err != nil {
		t.Fatal(err)
	}
	deadPort := dead.LocalAddr().(*net.UDPAddr).Port
	_ = dead.Close()
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "127.0.0.1", Port: deadPort, UriParams: sip.NewParams()}}
	contact.Address.UriParams.Add("transport", "tcp")
	dialogs := sipgo.NewDialogServerCache(cli, contact)
	invites := make(chan *sipgo.DialogServerSession, 2)
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		ds, err := dialogs.ReadInvite(req, tx)
		if err != nil {
			return
		}
		invites <- ds
		<-ds.Context().Done()
	})
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { _ = dialogs.ReadAck(req, tx) })
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) { _ = dialogs.ReadBye(req, tx) })
	t.Cleanup(func() { _ = srv.Close(); _ = ua.Close() })

	h, ps, _ := net.SplitHostPort(gwAddr)
	port, _ := strconv.Atoi(ps)
	gwURI := func(user string) sip.Uri {
		u := sip.Uri{Scheme: "sip", User: user, Host: h, Port: port, UriParams: sip.NewParams()}
		u.UriParams.Add("transport", "tcp")
		return u
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	reg := sip.NewRequest(sip.REGISTER, gwURI(""))
	reg.AppendHeader(&sip.FromHeader{Address: gwURI("alice"), Params: sip.NewParams()})
	reg.From().Params.Add("tag", sip.GenerateTagN(8))
	reg.AppendHeader(&sip.ToHeader{Address: gwURI("alice"), Params: sip.NewParams()})
	reg.AppendHeader(&contact)
	reg.AppendHeader(sip.NewHeader("Expires", "600"))
	res, err := cli.Do(ctx, reg)
	if err == nil && res.StatusCode == 401 {
		res, err = cli.DoDigestAuth(ctx, reg, res, sipgo.DigestAuth{Username: "alice", Password: "desk-secret"})
	}
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("REGISTER over TCP: %v %v", res, err)
	}
	eventually(t, "bob to see alice/desk online", func() bool { return online(n.bob, "alice/desk") })
	regs := n.gw.Registrations()
	if len(regs) == 0 || !strings.HasPrefix(regs[0].Flow, "tcp 127.0.0.1:") {
		t.Fatalf("registrations %+v, want alice's with a tcp flow", regs)
	}

	// The gateway's end of the phone's connection, and its sipgo
	// reference count before the call (flowRefs).
	source := strings.TrimPrefix(regs[0].Flow, "tcp ")
	before := flowRefs(t, n.gw, source)

	out, err := n.bob.Dial(ctx, "alice/desk")
	if err != nil {
		t.Fatal(err)
	}
	var ds *sipgo.DialogServerSession
	select {
	case ds = <-invites:
	case <-ctx.Done():
		t.Fatal("the phone got no INVITE over its connection")
	}
	if v := ds.InviteRequest.Via(); v == nil || v.Transport != "TCP" || v.Port != port {
		t.Errorf("INVITE Via %v, want TCP with the gateway's TCP port %d", v, port)
	}
	o, err := sdp.ParseOffer(ds.InviteRequest.Body())
	if err != nil {
		t.Fatal(err)
	}
	body, _, err := sdp.NewSession(9).Answer(o, sdp.Local{Addr: netip.MustParseAddr("127.0.0.1"), Port: 4000, Codecs: []string{"PCMU"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.RespondSDP(body); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob's call to be active (the ACK came over the flow)", func() bool { c, _ := n.bob.Call(out.ID); return c.State == "active" })
	if err := n.bob.Hangup(ctx, out.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ds.Context().Done():
	case <-ctx.Done():
		t.Fatal("the phone got no BYE over its connection")
	}

	// The call's transactions are over: the connection holds as many
	// references as before it. openFlow's look-up took one it never gave
	// back, one more per call, so the gateway could never let the
	// connection go.
	eventually(t, "the connection's references back to before the call", func() bool { return flowRefs(t, n.gw, source) == before })

	// The phone's connection goes: the flow is no longer offered, and a
	// call to the dead Contact fails (offline), it does not hang.
	_ = ua.Close()
	eventually(t, "the flow to be gone", func() bool {
		r := n.gw.Registrations()
		return len(r) > 0 && r[0].Flow == ""
	})
	out2, err := n.bob.Dial(ctx, "alice/desk")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob's second call to fail", func() bool { c, _ := n.bob.Call(out2.ID); return c.State == "ended" })
}

// flowRefs is the reference count sipgo holds on the gateway's TCP
// connection from source (the look-up's own reference not counted).
func flowRefs(t *testing.T, g *Gateway, source string) int {
	t.Helper()
	c := g.ua.TransportLayer().Pool("tcp").Get(source)
	if c == nil {
		t.Fatalf("no TCP connection from %s in the gateway's pool", source)
	}
	return c.Ref(-1)
}
