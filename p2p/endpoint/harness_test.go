package endpoint

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/access"
	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// wait is the generous bound for anything a test waits for; it never
// measures speed.
const wait = 15 * time.Second

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	if os.Getenv("BATON_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// network is an access server on loopback with users alice, bob, carol
// (buddies of each other) and mallory (nobody's buddy).
type network struct {
	t    *testing.T
	srv  *access.Server
	addr string
	pw   map[string]string
	// transitions: every handoff event of this network's endpoints,
	// checked against the tables when the test ends.
	transitions *transitionLog
}

func newNetwork(t *testing.T) *network {
	t.Helper()
	ctx := context.Background()
	srv, err := access.NewServer(ctx, access.Config{
		DataDir:     t.TempDir(),
		ServerNames: []string{"127.0.0.1"},
		Logger:      testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(sctx, ln) }()
	t.Cleanup(func() { cancel(); <-done; _ = srv.Close() })
	n := &network{t: t, srv: srv, addr: ln.Addr().String(), pw: map[string]string{}, transitions: &transitionLog{}}
	// Registered first, so it runs last: after every endpoint closed.
	t.Cleanup(func() { checkTransitions(t.Errorf, n.transitions.snapshot()) })
	for _, u := range []string{"alice", "bob", "carol", "mallory"} {
		n.pw[u] = u + "-secret"
		if err := srv.Users().AddUser(ctx, u, n.pw[u]); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range [][2]string{{"alice", "bob"}, {"alice", "carol"}, {"bob", "carol"}} {
		if err := srv.Users().AddBuddy(ctx, p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func (n *network) config(user, device string) Config {
	return Config{
		Access:   n.addr,
		Roots:    n.srv.CA().Pool(),
		User:     user,
		Device:   device,
		Password: n.pw[user],
		SRTP:     true,
		Codecs:   codecs.DefaultRegistry(),
		Logger:   testLogger(n.t).With("ep", user+"/"+device),

		transitionHook: n.transitions.record,
	}
}

// party is a started endpoint with its event subscription.
type party struct {
	*Endpoint
	events <-chan Event
	sink   *frameSink
}

func (n *network) start(user, device string, opts ...func(*Config)) *party {
	n.t.Helper()
	cfg := n.config(user, device)
	sink := &frameSink{}
	cfg.NewSink = func(string, string) (audio.Sink, error) { return sink, nil }
	for _, o := range opts {
		o(&cfg)
	}
	ep, err := New(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	events, cancel := ep.Subscribe()
	if err := ep.Start(context.Background()); err != nil {
		cancel()
		n.t.Fatalf("start %s/%s: %v", user, device, err)
	}
	n.t.Cleanup(func() { cancel(); _ = ep.Close() })
	return &party{Endpoint: ep, events: events, sink: sink}
}

func withTone(hz float64) func(*Config) {
	return func(c *Config) {
		c.NewSource = func(string) (audio.Source, error) { return audio.NewTone(hz, 8000, 0.3) }
	}
}

func withCodecs(names ...string) func(*Config) {
	return func(c *Config) {
		r, err := codecs.DefaultRegistry().Subset(names)
		if err != nil {
			panic(err)
		}
		c.Codecs = r
	}
}

func autoAnswer(c *Config) { c.AutoAnswer = true }

// frameSink records what an endpoint played.
type frameSink struct {
	mu  sync.Mutex
	pcm []int16
}

func (s *frameSink) WriteFrame(pcm []int16) error {
	s.mu.Lock()
	s.pcm = append(s.pcm, pcm...)
	s.mu.Unlock()
	return nil
}

func (s *frameSink) samples() []int16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int16(nil), s.pcm...)
}

// next waits for the first event of type typ (skipping others).
func (p *party) next(t *testing.T, typ string) Event {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-p.events:
			if !ok {
				t.Fatalf("%s: event stream closed while waiting for %s", p.Identity(), typ)
			}
			if ev.Type == typ {
				return ev
			}
		case <-timer.C:
			t.Fatalf("%s: no %s event within %s", p.Identity(), typ, wait)
		}
	}
}

// eventually polls cond until it holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *party) waitOnline(t *testing.T, peer string) {
	t.Helper()
	eventually(t, p.Identity().String()+" to see "+peer+" online", func() bool {
		for _, b := range p.Buddies() {
			for _, d := range b.Devices {
				if b.User+"/"+d.Device == peer && d.Status == "online" {
					return true
				}
			}
		}
		return false
	})
}

func (p *party) waitState(t *testing.T, id, state string) CallInfo {
	t.Helper()
	var info CallInfo
	eventually(t, "call "+id+" at "+p.Identity().String()+" to be "+state, func() bool {
		var err error
		info, err = p.Call(id)
		return err == nil && info.State == state
	})
	return info
}

// establish has caller call callee (which must auto-answer) and waits
// until the call is active on both sides.
func establish(t *testing.T, caller, callee *party) (callerCall, calleeCall CallInfo) {
	t.Helper()
	caller.waitOnline(t, callee.Identity().String())
	c, err := caller.Dial(context.Background(), callee.Identity().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	in := callee.next(t, "call.active")
	return caller.waitState(t, c.ID, "active"), callee.waitState(t, in.CallID, "active")
}

// rawLogin logs in a hand-driven endpoint: a real login and certificate,
// but signaling written by the test, to send what a real endpoint would not.
func (n *network) rawLogin(t *testing.T, user, device string) *access.Client {
	t.Helper()
	c, err := access.Login(context.Background(), access.ClientConfig{
		Addr:       n.addr,
		Roots:      n.srv.CA().Pool(),
		User:       user,
		Device:     device,
		Password:   n.pw[user],
		SignalAddr: netip.MustParseAddrPort("127.0.0.1:9"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// rawDial opens signaling from client's identity to the endpoint p.
func (n *network) rawDial(t *testing.T, client *access.Client, p *party) *wire.Conn {
	t.Helper()
	cfg := pki.EndpointClientConfig(client.Certificate, n.srv.CA().Pool(), p.Identity(), time.Now)
	nc, err := tls.Dial("tcp", p.SignalAddr().String(), cfg)
	if err != nil {
		t.Fatalf("raw dial %s: %v", p.Identity(), err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return wire.NewConn(nc, 0)
}

// recvType reads messages until one of type T arrives.
func recvUntil(t *testing.T, c *wire.Conn, typ wire.Type) wire.Message {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	for {
		m, err := c.Recv()
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		if m.Type() == typ {
			return m
		}
	}
}

func isErr(err, target error) bool { return errors.Is(err, target) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// rawQuery opens signaling from client's identity to p and sends it a
// session query (handoff step 2), leaving the answer to the caller.
func (n *network) rawQuery(t *testing.T, client *access.Client, p *party) *wire.Conn {
	t.Helper()
	conn := n.rawDial(t, client, p)
	if err := conn.Send(&wire.SessionQuery{QueryID: "q-1"}, time.Second); err != nil {
		t.Fatal(err)
	}
	return conn
}
