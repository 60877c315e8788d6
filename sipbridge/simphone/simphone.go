// Package simphone is a small SIP user agent built on sipgo, with real
// sockets: a desk phone that registers with digest, answers and places
// calls, or a provider's SBC that sends calls from its own address without
// registering. Each call has a plain RTP socket that sends a tone (PCMU or
// PCMA, 20 ms packets) and keeps what it hears, decoded, for checks.
//
// Each phone keeps a trace of every SIP message it sends and receives
// (Trace), and each call a log of the RTP packets it received (Report:
// SSRCs, sequence gaps, timestamp jumps, the longest gap, the tone per
// second). A call can be blind-transferred with REFER (Call.Refer), whose
// NOTIFYs the phone answers and follows.
//
// `baton demo` uses it for its built-in desk phone and its simulated
// trunk, so the demo needs no external program. It is not a softphone for
// people: no sound card, no re-INVITE.
package simphone

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/sipbridge/sdp"
)

// Config configures a Phone.
type Config struct {
	// User is the SIP user name (the account at the gateway, or the
	// caller's number for a trunk).
	User string
	// Password answers digest challenges; "" for a trunk (the gateway
	// accepts a trunk by its source address).
	Password string
	// Gateway is the gateway's SIP UDP address, host:port.
	Gateway string
	// IP is the local address of the phone's SIP and RTP sockets.
	IP netip.Addr
	// Tone is the frequency the phone sends in every call, in Hz.
	Tone float64
	// AutoAnswer answers incoming calls at once (200 after a 180).
	AutoAnswer bool
	// NotifyTimeout bounds how long Call.Refer waits for the first NOTIFY
	// after the 202; 0 means 5 s.
	NotifyTimeout time.Duration
	// Logger receives the phone's logs; nil discards them.
	Logger *slog.Logger

	// onRefer, for tests in this package, answers REFERs the phone
	// receives (a phone standing in for the gateway).
	onRefer func(p *Phone, req *sip.Request, tx sip.ServerTransaction)
}

// ErrCall means a call could not be set up: the message says why (the
// final status, an unusable answer).
var ErrCall = errors.New("simphone: call failed")

// Phone is a running user agent.
type Phone struct {
	cfg     Config
	log     *slog.Logger
	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	cli     *sipgo.Client
	pc      net.PacketConn
	addr    netip.AddrPort
	gw      sip.Uri
	contact sip.ContactHeader
	uac     *sipgo.DialogClientCache
	uas     *sipgo.DialogServerCache
	reg     *codecs.Registry

	incoming chan *Call

	traceMu  sync.Mutex
	messages []Message
	callsMu  sync.Mutex
	calls    map[string]*Call // by SIP Call-ID

	wg     sync.WaitGroup
	closed chan struct{}
	once   sync.Once
}

// Start opens the phone's SIP socket and serves it.
func Start(cfg Config) (*Phone, error) {
	if cfg.User == "" || cfg.Gateway == "" || !cfg.IP.IsValid() {
		return nil, errors.New("simphone: User, Gateway and IP are required")
	}
	if cfg.Tone <= 0 || cfg.Tone >= 4000 {
		return nil, fmt.Errorf("simphone: tone %v Hz: want 0 < Hz < 4000", cfg.Tone)
	}
	host, portS, err := net.SplitHostPort(cfg.Gateway)
	if err != nil {
		return nil, fmt.Errorf("simphone: gateway %q: %w", cfg.Gateway, err)
	}
	var port int
	if _, err := fmt.Sscan(portS, &port); err != nil || port <= 0 || port > 65535 {
		return nil, fmt.Errorf("simphone: gateway %q: bad port", cfg.Gateway)
	}
	if cfg.NotifyTimeout <= 0 {
		cfg.NotifyTimeout = 5 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pc, err := net.ListenPacket("udp", netip.AddrPortFrom(cfg.IP, 0).String())
	if err != nil {
		return nil, fmt.Errorf("simphone: SIP socket: %w", err)
	}
	addr := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	tc := &tracingConn{PacketConn: pc}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("baton-simphone"), sipgo.WithUserAgentHostname(cfg.IP.String()),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log)))
	if err != nil {
		_ = pc.Close()
		return nil, err
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(log))
	if err != nil {
		_ = pc.Close()
		_ = ua.Close()
		return nil, err
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname(cfg.IP.String()), sipgo.WithClientPort(int(addr.Port())),
		// Send from the SIP socket itself (a trunk is accepted by its
		// source address), so the trace sees every message both ways.
		sipgo.WithClientConnectionAddr(addr.String()), sipgo.WithClientLogger(log))
	if err != nil {
		_ = pc.Close()
		_ = ua.Close()
		return nil, err
	}
	p := &Phone{
		cfg: cfg, log: log, ua: ua, srv: srv, cli: cli, pc: tc, addr: addr,
		calls:    map[string]*Call{},
		gw:       sip.Uri{Scheme: "sip", Host: host, Port: port},
		reg:      codecs.DefaultRegistry(),
		incoming: make(chan *Call, 4),
		closed:   make(chan struct{}),
	}
	p.contact = sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: cfg.User, Host: cfg.IP.String(), Port: int(addr.Port())}}
	p.uac = sipgo.NewDialogClientCache(cli, p.contact)
	p.uas = sipgo.NewDialogServerCache(cli, p.contact)
	srv.OnInvite(p.onInvite)
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { _ = p.uas.ReadAck(req, tx) })
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := p.uas.ReadBye(req, tx); err == nil {
			return
		}
		if err := p.uac.ReadBye(req, tx); err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call Does Not Exist", nil))
		}
	})
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	})
	srv.OnNotify(p.onNotify)
	if cfg.onRefer != nil {
		srv.OnRefer(func(req *sip.Request, tx sip.ServerTransaction) { cfg.onRefer(p, req, tx) })
	}
	tc.p = p
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_ = srv.ServeUDP(tc)
	}()
	// Requests go out on the SIP socket once the transport serves it.
	for deadline := time.Now().Add(2 * time.Second); ; {
		if c, _ := ua.TransportLayer().GetConnection("udp", addr.String()); c != nil {
			break
		}
		if time.Now().After(deadline) {
			_ = p.Close()
			return nil, errors.New("simphone: the SIP socket was not served within 2s")
		}
		time.Sleep(time.Millisecond)
	}
	return p, nil
}

// Addr is the phone's SIP address.
func (p *Phone) Addr() netip.AddrPort { return p.addr }

// Incoming delivers the calls the phone answered (AutoAnswer).
func (p *Phone) Incoming() <-chan *Call { return p.incoming }

// Register registers the phone's contact for expires (0 unregisters),
// answering the gateway's digest challenge.
func (p *Phone) Register(ctx context.Context, expires time.Duration) error {
	aor := p.gw
	aor.User = p.cfg.User
	req := sip.NewRequest(sip.REGISTER, p.gw)
	req.AppendHeader(&sip.ToHeader{Address: aor})
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&p.contact)
	req.AppendHeader(sip.NewHeader("Expires", fmt.Sprint(int(expires/time.Second))))
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("simphone: REGISTER: %w", err)
	}
	if res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired {
		res, err = p.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.cfg.User, Password: p.cfg.Password})
		if err != nil {
			return fmt.Errorf("simphone: REGISTER with digest: %w", err)
		}
	}
	if res.StatusCode != sip.StatusOK {
		return fmt.Errorf("simphone: REGISTER: %d %s", res.StatusCode, res.Reason)
	}
	return nil
}

// Call calls user at the gateway (a P2P user, user+device, or a number a
// trunk routes) and returns the call once it is answered and ACKed.
func (p *Phone) Call(ctx context.Context, user string) (*Call, error) {
	m, err := p.openMedia()
	if err != nil {
		return nil, err
	}
	offer, _, err := sdp.NewSession(randomID()).Offer(m.local())
	if err != nil {
		m.close()
		return nil, err
	}
	to := p.gw
	to.User = user
	from := &sip.FromHeader{Address: p.contact.Address, Params: sip.NewParams()}
	from.Address.Port = 0
	from.Params.Add("tag", sip.GenerateTagN(16))
	dc, err := p.uac.Invite(ctx, to, offer, sip.NewHeader("Content-Type", "application/sdp"), from)
	if err != nil {
		m.close()
		return nil, fmt.Errorf("simphone: INVITE %s: %w", user, err)
	}
	if err := dc.WaitAnswer(ctx, sipgo.AnswerOptions{Username: p.cfg.User, Password: p.cfg.Password}); err != nil {
		m.close()
		return nil, fmt.Errorf("%w: INVITE %s: %w", ErrCall, user, err)
	}
	if err := dc.Ack(ctx); err != nil {
		m.close()
		return nil, fmt.Errorf("simphone: ACK: %w", err)
	}
	answer, err := sdp.ParseOffer(dc.InviteResponse.Body())
	if err == nil {
		err = m.use(answer)
	}
	if err != nil {
		byeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = dc.Bye(byeCtx)
		cancel()
		m.close()
		return nil, fmt.Errorf("%w: the answer's SDP: %w", ErrCall, err)
	}
	c := &Call{Peer: user, media: m, bye: dc.Bye, done: dc.Context().Done(), do: dc.Do,
		callID: dc.InviteRequest.CallID().Value(), remote: remoteTarget(dc.InviteResponse, p.gw), p: p}
	p.run(c)
	return c, nil
}

func (p *Phone) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	ds, err := p.uas.ReadInvite(req, tx)
	if err != nil {
		return
	}
	if !p.cfg.AutoAnswer {
		_ = ds.Respond(sip.StatusBusyHere, "Busy Here", nil)
		return
	}
	offer, err := sdp.ParseOffer(req.Body())
	if err != nil {
		_ = ds.Respond(sip.StatusBadRequest, "Bad SDP", nil)
		return
	}
	m, err := p.openMedia()
	if err != nil {
		_ = ds.Respond(sip.StatusServiceUnavailable, "No Media Port", nil)
		return
	}
	answer, chosen, err := sdp.NewSession(randomID()).Answer(offer, m.local())
	if err == nil {
		err = m.use(chosen)
		if err == nil {
			m.remote = netip.AddrPortFrom(offer.Addr, uint16(offer.Port))
		}
	}
	if err != nil {
		m.close()
		_ = ds.Respond(sip.StatusNotAcceptableHere, "Not Acceptable Here", nil)
		return
	}
	_ = ds.Respond(sip.StatusRinging, "Ringing", nil)
	// The dialog's own copy of the INVITE carries our To tag.
	res := sip.NewSDPResponseFromRequest(ds.InviteRequest, answer)
	res.AppendHeader(&p.contact)
	c := &Call{Peer: req.From().Address.User, media: m, bye: ds.Bye, done: ds.Context().Done(), do: ds.Do,
		callID: req.CallID().Value(), remote: remoteTarget(req, p.gw), p: p}
	p.run(c)
	select {
	case p.incoming <- c:
	default:
	}
	// Retransmits the 200 until the ACK; returns when the dialog is
	// confirmed or gives up.
	_ = ds.WriteResponse(res)
	<-ds.Context().Done()
}

// run starts a call's media until the dialog ends.
func (p *Phone) run(c *Call) {
	c.ended = make(chan struct{})
	c.notifies = make(chan string, 8)
	p.callsMu.Lock()
	p.calls[c.callID] = c
	p.callsMu.Unlock()
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		c.media.receive()
	}()
	go func() {
		defer p.wg.Done()
		defer close(c.ended)
		c.media.send(c.done, p.closed, p.cfg.Tone)
		c.media.close()
		p.callsMu.Lock()
		delete(p.calls, c.callID)
		p.callsMu.Unlock()
	}()
}

// Close ends every call's media and the phone's sockets.
func (p *Phone) Close() error {
	p.once.Do(func() {
		close(p.closed)
		_ = p.srv.Close()
		_ = p.ua.Close()
		_ = p.pc.Close()
	})
	p.wg.Wait()
	return nil
}

// Call is one call of the phone.
type Call struct {
	// Peer is who the call is with: the user dialled, or the caller's
	// From user.
	Peer   string
	media  *media
	bye    func(context.Context) error
	do     func(context.Context, *sip.Request) (*sip.Response, error)
	done   <-chan struct{}
	ended  chan struct{}
	callID string
	remote sip.Uri // the far side's Contact, for requests in the dialog
	p      *Phone
	// notifies carries the sipfrag status lines of the REFER
	// subscription's NOTIFYs; "" marks the final one.
	notifies chan string
}

// Hangup sends BYE.
func (c *Call) Hangup(ctx context.Context) error { return c.bye(ctx) }

// Ended is closed when the call is over (either side's BYE) and its
// media has stopped.
func (c *Call) Ended() <-chan struct{} { return c.ended }

// Heard is what the phone received in the call, decoded to 8 kHz PCM.
func (c *Call) Heard() []int16 { return c.media.heard() }

// Packets returns the RTP packets sent and received.
func (c *Call) Packets() (sent, received int) { return c.media.counts() }

// media is a call's RTP socket.
type media struct {
	conn  *net.UDPConn
	reg   *codecs.Registry
	codec codecs.Codec
	pt    uint8

	mu       sync.Mutex
	remote   netip.AddrPort
	pcm      []int16
	log      []Packet
	sent     int
	received int
}

func (p *Phone) openMedia() (*media, error) {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.cfg.IP, 0)))
	if err != nil {
		return nil, fmt.Errorf("simphone: RTP socket: %w", err)
	}
	return &media{conn: conn, reg: p.reg}, nil
}

func (m *media) local() sdp.Local {
	a := m.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	return sdp.Local{Addr: a.Addr(), Port: int(a.Port()), Codecs: m.reg.Names(), PTime: 20, Direction: sdp.SendRecv}
}

// use takes the codec and address of the far side's SDP.
func (m *media) use(o *sdp.Offer) error {
	for _, c := range o.Codecs {
		if codec, ok := m.reg.Lookup(strings.ToUpper(c.Name)); ok {
			m.mu.Lock()
			m.codec, m.pt = codec, c.PT
			if o.Addr.IsValid() && o.Port > 0 {
				m.remote = netip.AddrPortFrom(o.Addr, uint16(o.Port))
			}
			m.mu.Unlock()
			return nil
		}
	}
	return sdp.ErrNoCommonCodec
}

// send plays the tone every 20 ms until the dialog or the phone ends.
func (m *media) send(done, closed <-chan struct{}, hz float64) {
	tone, err := audio.NewTone(hz, 8000, 0.3)
	if err != nil {
		return
	}
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: m.pt, SSRC: uint32(randomID()), SequenceNumber: uint16(randomID())}}
	frame := make([]int16, 160)
	payload := make([]byte, 160)
	buf := make([]byte, 1500)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-closed:
			return
		case <-tick.C:
		}
		_ = tone.ReadFrame(frame)
		m.mu.Lock()
		codec, remote := m.codec, m.remote
		m.mu.Unlock()
		n, err := codec.Encode(payload, frame)
		if err != nil || !remote.IsValid() {
			continue
		}
		pkt.Payload = payload[:n]
		k, err := pkt.MarshalTo(buf)
		if err != nil {
			continue
		}
		pkt.SequenceNumber++
		pkt.Timestamp += 160
		if _, err := m.conn.WriteToUDPAddrPort(buf[:k], remote); err == nil {
			m.mu.Lock()
			m.sent++
			m.mu.Unlock()
		}
	}
}

// receive decodes every RTP packet of the call's codecs until the socket
// closes.
func (m *media) receive() {
	buf := make([]byte, 1500)
	pcm := make([]int16, 1200)
	var pkt rtp.Packet
	for {
		n, _, err := m.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		codec, ok := m.reg.ByPayloadType(pkt.PayloadType)
		if !ok {
			continue
		}
		k, err := codec.Decode(pcm, pkt.Payload)
		if err != nil {
			continue
		}
		m.mu.Lock()
		m.log = append(m.log, Packet{At: time.Now(), SSRC: pkt.SSRC, Seq: pkt.SequenceNumber, TS: pkt.Timestamp, Offset: len(m.pcm), Samples: k})
		m.pcm = append(m.pcm, pcm[:k]...)
		m.received++
		m.mu.Unlock()
	}
}

func (m *media) close() { _ = m.conn.Close() }

func (m *media) heard() []int16 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int16(nil), m.pcm...)
}

func (m *media) counts() (int, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sent, m.received
}

func randomID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) >> 2
}
