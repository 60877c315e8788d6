package gateway

import (
	"context"
	"net/netip"
	"testing"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/sipbridge"
	"github.com/baton-voice/baton/sipbridge/sdp"
)

// TestDeskPhoneCallsDeskPhoneInProcess: alice's desk phone calls bob's,
// both devices of this gateway; the P2P call between the two devices is
// connected in process (the host counts it) and audio flows both ways.
// With Config.NoLocalShortcut the same call goes over TLS to the
// gateway's own listener and nothing is counted.
func TestDeskPhoneCallsDeskPhoneInProcess(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		off  bool
	}{{"in process", false}, {"tls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := newTestNet(t, true, func(c *Config) {
				c.NoLocalShortcut = tc.off
				c.Accounts = append(c.Accounts, Account{SIPUser: "bobdesk", HA1: sipbridge.HA1("bobdesk", "baton.test", "bob-desk-secret"),
					User: "bob", Device: "desk", Password: "bob-p2p-secret"})
			})
			gw := n.gw.Addr("udp")
			alice := newPhone(t, gw, "alice", "desk-secret")
			bob := newPhone(t, gw, "bobdesk", "bob-desk-secret")
			for _, p := range []*phone{alice, bob} {
				if res := p.register(600); res.StatusCode != 200 {
					t.Fatalf("REGISTER %s: %d", p.user, res.StatusCode)
				}
			}
			eventually(t, "bob/laptop to see both desks online", func() bool { return online(n.bob, "alice/desk") && online(n.bob, "bob/desk") })
			la, stopA := alice.rtpLeg(660)
			defer stopA()
			lb, stopB := bob.rtpLeg(1000)
			defer stopB()

			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			// bob's desk phone answers in PCMU.
			answered := make(chan *sipgo.DialogServerSession, 1)
			go func() {
				select {
				case ds := <-bob.invites:
					o, err := sdp.ParseOffer(ds.InviteRequest.Body())
					if err != nil {
						t.Error(err)
						return
					}
					body, chosen, err := sdp.NewSession(9).Answer(o, sdp.Local{Addr: netip.MustParseAddr("127.0.0.1"), Port: int(lb.LocalAddr().Port()), Codecs: []string{"PCMU"}})
					if err != nil {
						t.Error(err)
						return
					}
					lb.setRemote(codecs.PCMU(), chosen.Codecs[0].PT, -1, netip.AddrPortFrom(o.Addr, uint16(o.Port)), netip.Addr{}, true)
					answered <- ds
					_ = ds.RespondSDP(body)
				case <-ctx.Done():
				}
			}()
			dialogs := sipgo.NewDialogClientCache(alice.cli, sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "127.0.0.1", Port: alice.port()}})
			dc, err := dialogs.Invite(ctx, alice.gwURI("bob+desk"), phoneSDP(t, la, "PCMU"), sip.NewHeader("Content-Type", "application/sdp"))
			if err != nil {
				t.Fatal(err)
			}
			if err := dc.WaitAnswer(ctx, sipgo.AnswerOptions{Username: "alice", Password: "desk-secret"}); err != nil {
				t.Fatalf("INVITE bob+desk: %v", err)
			}
			if err := dc.Ack(ctx); err != nil {
				t.Fatal(err)
			}
			alice.useAnswer(la, dc.InviteResponse.Body())
			select {
			case <-answered:
			case <-ctx.Done():
				t.Fatal("bob's desk phone got no INVITE")
			}
			eventually(t, "a second of audio at both desk phones", func() bool {
				return len(alice.heard.samples()) >= 16000 && len(bob.heard.samples()) >= 16000
			})
			if f := dominant(t, bob.heard.samples()); f != 660 {
				t.Errorf("bob's desk phone heard %v Hz, want alice's 660", f)
			}
			if f := dominant(t, alice.heard.samples()); f != 1000 {
				t.Errorf("alice's desk phone heard %v Hz, want bob's 1000", f)
			}
			want := uint64(1)
			if tc.off {
				want = 0
			}
			if got := n.gw.host.LocalConnections(); got != want {
				t.Errorf("in-process connections %d, want %d", got, want)
			}
			// The host's counters are on the gateway's /metrics too.
			reg := prometheus.NewRegistry()
			if err := n.gw.Register(reg); err != nil {
				t.Fatal(err)
			}
			if got := gathered(t, reg, "baton_host_local_connections_total"); got != float64(want) {
				t.Errorf("baton_host_local_connections_total = %v, want %d", got, want)
			}
			if err := dc.Bye(ctx); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the gateway to forget the calls", func() bool { return len(n.gw.Calls()) == 0 })
		})
	}
}

// gathered is the value of the unlabelled counter or gauge name in reg.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("%s not gathered", name)
	return 0
}
