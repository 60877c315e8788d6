package media

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-voice/baton/codecs"
)

const (
	// datagramPool is how many received datagrams can be in flight
	// between the socket readers and the timeline goroutine. When all are
	// in flight a reader waits and the kernel's socket buffer absorbs the
	// burst, so nothing is dropped for lack of a buffer.
	datagramPool = 4
	// maxCatchUp is how many overdue ticks the timeline replays at once
	// after the process was not scheduled for a while. Beyond it (a stall
	// longer than about a second) the overdue ticks are skipped: timestamps
	// and playout move on without a burst of stale packets.
	maxCatchUp = 50
)

// Session is the direct RTP media of one call: two-way audio over one UDP
// socket, optionally protected with SRTP, with a jitter buffer on the
// receiving side.
//
// Concurrency: one goroutine (the timeline) owns all media state (the
// engine): it sends a packet and plays out one frame every ptime, and it
// processes every received datagram. One reader goroutine per socket reads
// datagrams into buffers from a small fixed pool, drops those from
// addresses that are not allowed, and hands the rest to the timeline over a
// channel; the timeline returns each buffer to the pool. Public methods
// either touch small atomically published values (remote address, allowed
// sources, the sending switch) or submit work to the timeline and wait for
// it, like pion/ice's task loop.
type Session struct {
	log   *slog.Logger
	ssrc  uint32
	ptime time.Duration

	cmds     chan func()
	ready    chan *datagram
	free     chan *datagram
	closing  chan struct{}
	loopDone chan struct{}

	peers       atomic.Pointer[peerSet]
	sending     atomic.Bool
	muted       atomic.Bool // SetPlaying(false): playout writes silence
	wrongSource atomic.Uint64
	latched     atomic.Uint64
	latch       bool // Config.LatchAuthenticated with SRTP on
	oversize    atomic.Uint64

	consentTimeout time.Duration // <= 0: consent never lapses
	probeInterval  time.Duration // <= 0: no probes

	mu      sync.Mutex // guards closed, readers, local
	closed  bool
	readers []*socketReader
	local   netip.AddrPort

	rebindMu  sync.Mutex // one Rebind at a time
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
	// final is the last snapshot, written by the timeline before loopDone
	// is closed.
	final Stats

	// Owned by the timeline goroutine.
	eng     *engine
	started bool
	ticker  *time.Ticker
	// call is the session's membership of its batch codec's shared
	// Ticker (instead of ticker), nil for other codecs.
	call        *codecs.TickerCall
	t0          time.Time
	ticks       int64
	pendingSwap *swapRequest
	// proof is when an authenticated packet last came from each recent
	// source address: the evidence that an address receives (latching in
	// the sense of RFC 7675's consent, see hasConsent).
	proof map[netip.AddrPort]time.Time
	// consentFor and consented: whether consentFor, the remote of the
	// last tick, had consent then (for counting lapses once).
	consentFor    netip.AddrPort
	consented     bool
	lastProbe     time.Time
	probeFor      netip.AddrPort
	consentLapses uint64
	probes        uint64
	notSent       uint64
}

// maxProofs bounds the addresses whose proof is remembered: the peer's
// current and previous addresses, a handoff's new device.
const maxProofs = 8

// datagram is one received packet on its way from a reader to the
// timeline.
type datagram struct {
	n    int
	from netip.AddrPort
	at   time.Time
	buf  []byte
	// unverified: from an address not allowed (yet); accepted only if it
	// authenticates (Config.LatchAuthenticated).
	unverified bool
}

// peerSet is the remote address and the source addresses accepted from.
// It is immutable once published. confirmed says the caller vouched for
// remote (SetRemote) at since; otherwise remote must prove it receives
// before it gets more than consent probes.
type peerSet struct {
	remote    netip.AddrPort
	allowed   []netip.AddrPort
	confirmed bool
	since     time.Time
}

func (p *peerSet) allows(a netip.AddrPort) bool {
	return p != nil && slices.Contains(p.allowed, a)
}

type socketReader struct {
	conn *net.UDPConn
	stop chan struct{}
	done chan struct{}
}

type swapRequest struct {
	conn *net.UDPConn
	done chan *net.UDPConn // receives the replaced socket
}

// Open validates cfg and binds the session's UDP socket. Nothing is sent
// and nothing is played until Start; packets that arrive before are checked
// and counted like any other, and buffered for playout.
func Open(ctx context.Context, cfg Config) (*Session, error) {
	set, err := cfg.settings()
	if err != nil {
		if cfg.Conn != nil {
			_ = cfg.Conn.Close()
		}
		return nil, err
	}
	ssrc := set.SSRC
	for ssrc == 0 {
		// RFC 3550 §8.1: the SSRC is random so that two sessions are
		// unlikely to pick the same one. 0 means "pick one" in Config.
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			if set.Conn != nil {
				_ = set.Conn.Close()
			}
			return nil, fmt.Errorf("media: open: ssrc: %w", err)
		}
		ssrc = binary.BigEndian.Uint32(b[:])
	}
	set.Logger = set.Logger.With("component", "media", "ssrc", ssrc)
	eng, err := newEngine(set, ssrc)
	if err != nil {
		if set.Conn != nil {
			_ = set.Conn.Close()
		}
		return nil, err
	}
	conn, bound := set.Conn, set.Local
	if conn == nil {
		conn, bound, err = listenUDP(ctx, set.Local)
		if err != nil {
			_ = eng.close()
			return nil, fmt.Errorf("media: open: bind %s: %w", set.Local, err)
		}
	}
	eng.conn = conn
	eng.impair = newImpairer(set.Impairment, ssrc)
	s := &Session{
		log:      set.Logger,
		ssrc:     ssrc,
		ptime:    set.Ptime,
		cmds:     make(chan func()),
		ready:    make(chan *datagram, datagramPool),
		free:     make(chan *datagram, datagramPool),
		closing:  make(chan struct{}),
		loopDone: make(chan struct{}),
		local:    bound,
		eng:      eng,
		latch:    set.LatchAuthenticated && set.RecvKeys != nil,

		consentTimeout: set.ConsentTimeout,
		probeInterval:  set.ConsentProbeInterval,
		proof:          make(map[netip.AddrPort]time.Time, maxProofs),
	}
	s.sending.Store(true)
	for range datagramPool {
		s.free <- &datagram{buf: make([]byte, set.datagramCap)}
	}
	s.addReader(conn)
	s.wg.Add(1)
	go s.run()
	s.log.Debug("media session open", "local", bound, "codec", set.desc.Name, "srtp", set.SendKeys != nil)
	return s, nil
}

// LocalAddr returns the address the session's socket is bound to.
func (s *Session) LocalAddr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.local
}

// SSRC returns this sender's synchronization source identifier.
func (s *Session) SSRC() uint32 { return s.ssrc }

// SetRemote sets where RTP is sent and makes addr the only address RTP is
// accepted from (replacing any AllowSource additions). An invalid addr
// stops sending and accepts nothing.
//
// The caller vouches that addr consents to receive this session's media:
// say, its IP is the one the peer's authenticated signaling comes from.
// Consent still lapses if nothing authenticated arrives from addr for
// Config.ConsentTimeout. For an address the peer merely named, use
// SetRemoteUnconfirmed.
func (s *Session) SetRemote(addr netip.AddrPort) {
	s.setRemote(addr, true)
}

// SetRemoteUnconfirmed is SetRemote for an address nobody has vouched for
// (one a peer named in signaling, on another IP than its signaling): until
// an authenticated packet arrives from addr (it proves addr is the peer,
// RFC 7675 §5.1 in spirit), addr gets only consent probes, one packet per
// Config.ConsentProbeInterval, so a peer cannot turn this session into a
// traffic reflector aimed at a third party.
func (s *Session) SetRemoteUnconfirmed(addr netip.AddrPort) {
	s.setRemote(addr, false)
}

func (s *Session) setRemote(addr netip.AddrPort, confirmed bool) {
	addr = unmap(addr)
	p := &peerSet{remote: addr, confirmed: confirmed, since: time.Now()}
	if addr.IsValid() {
		p.allowed = []netip.AddrPort{addr}
	}
	s.peers.Store(p)
}

// RemoteROC returns the SRTP roll-over counter of the stream being played
// (RFC 3711 §3.3.1), for handing it to a session that takes the stream
// over. ok is false before any SRTP packet arrived or for plain RTP.
func (s *Session) RemoteROC() (roc ROC, ok bool) {
	s.exec(func() {
		if !s.eng.jb.hasSource {
			return
		}
		ssrc := s.eng.jb.src.ssrc
		if v, found := s.eng.recv.roc(ssrc); found {
			roc, ok = ROC{SSRC: ssrc, ROC: v}, true
		}
	})
	return roc, ok
}

// latchVerdict finishes the handling of a packet from an address that was
// not allowed: if it passed SRTP authentication (RFC 3711 §3.3) the
// address is latched as an allowed source; otherwise the packet counts as
// from a wrong source, not against the call's own stream.
func (s *Session) latchVerdict(from netip.AddrPort, v receiveVerdict) {
	if v.authentic() {
		s.AllowSource(from)
		s.latched.Add(1)
		s.log.Debug("latched an authenticated source", "from", from)
		return
	}
	s.eng.recv.uncount(v)
	s.wrongSource.Add(1)
}

// AllowSource accepts RTP from addr as well, without changing where RTP is
// sent. A handoff uses it for the moment when the far party hears both the
// old and the new device (make-before-break).
func (s *Session) AllowSource(addr netip.AddrPort) {
	addr = unmap(addr)
	if !addr.IsValid() {
		return
	}
	for {
		old := s.peers.Load()
		if old.allows(addr) {
			return
		}
		next := &peerSet{}
		if old != nil {
			next.remote, next.confirmed, next.since = old.remote, old.confirmed, old.since
			next.allowed = slices.Clone(old.allowed)
		}
		next.allowed = append(next.allowed, addr)
		if s.peers.CompareAndSwap(old, next) {
			return
		}
	}
}

// Start starts sending (one packet per ptime, once a remote is set) and
// playout (one frame per ptime to the sink, once the first packet's
// playout time has come). Calling it again, or after Close, does nothing.
func (s *Session) Start() {
	s.exec(s.start)
}

// SetSending pauses (false) or resumes (true) sending without closing
// anything. While paused the RTP timestamp keeps advancing and the
// sequence number does not, so the peer sees a silence, not a loss
// (RFC 3550 §5.1); the first packet after it carries the marker bit
// (RFC 3551 §4.1). Sending is on after Open.
func (s *Session) SetSending(on bool) { s.sending.Store(on) }

// SetPlaying stops (false) or restarts (true) playing what is received,
// for a call whose direction does not receive (sendonly or inactive, RFC
// 3264 §6.1): received packets are still authenticated and buffered, so
// the SRTP roll-over counter and the jitter buffer stay current, but the
// sink gets silence, one frame per ptime as before. Playing is on after
// Open.
func (s *Session) SetPlaying(on bool) { s.muted.Store(!on) }

// Rebind moves the session's media to a new local address (port 0: any
// free port) and returns the bound address. It opens the new socket, then
// switches sending and receiving to it at the next packet time, just before
// that packet is sent (the previous packet left the old socket one ptime
// earlier, so little is in flight from the old address when the peer
// learns the new one), then closes the old socket. Packets already read
// from the old socket are still processed. It tells nobody: the signaling
// layer informs the peer (handoff steps 9-11), which must accept the new
// address (AllowSource or SetRemote) before packets from it count.
//
// The SSRC, sequence numbers, timestamps, SRTP contexts and jitter buffer
// continue unchanged. On error the old socket stays in use. ctx bounds the
// bind; the switch itself completes within about one ptime.
func (s *Session) Rebind(ctx context.Context, local netip.AddrPort) (netip.AddrPort, error) {
	if !local.IsValid() {
		return netip.AddrPort{}, fmt.Errorf("media: rebind: local %q: %w", local, ErrInvalidAddress)
	}
	local = unmap(local)
	s.rebindMu.Lock()
	defer s.rebindMu.Unlock()
	if err := ctx.Err(); err != nil {
		return netip.AddrPort{}, fmt.Errorf("media: rebind %s: %w", local, err)
	}
	conn, bound, err := listenUDP(ctx, local)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("media: rebind %s: %w", local, err)
	}
	r, ok := s.addReader(conn)
	if !ok {
		_ = conn.Close()
		return netip.AddrPort{}, fmt.Errorf("media: rebind %s: %w", local, ErrClosed)
	}
	req := &swapRequest{conn: conn, done: make(chan *net.UDPConn, 1)}
	select {
	case s.cmds <- func() { s.requestSwap(req) }:
	case <-ctx.Done():
		s.dropReader(r)
		return netip.AddrPort{}, fmt.Errorf("media: rebind %s: %w", local, ctx.Err())
	case <-s.loopDone:
		return netip.AddrPort{}, fmt.Errorf("media: rebind %s: %w", local, ErrClosed)
	}
	var old *net.UDPConn
	select {
	case old = <-req.done:
	case <-s.loopDone:
		return netip.AddrPort{}, fmt.Errorf("media: rebind %s: %w", local, ErrClosed)
	}
	s.mu.Lock()
	s.local = bound
	var oldReader *socketReader
	if i := slices.IndexFunc(s.readers, func(r *socketReader) bool { return r.conn == old }); i >= 0 {
		oldReader = s.readers[i]
		s.readers = slices.Delete(s.readers, i, i+1)
	}
	s.mu.Unlock()
	if oldReader != nil {
		stopReader(oldReader)
	}
	s.log.Info("media rebound", "local", bound)
	return bound, nil
}

// Stats returns a consistent snapshot of the session's counters. After
// Close it returns the final counters.
func (s *Session) Stats() Stats {
	var st Stats
	if s.exec(func() { st = s.snapshot() }) {
		return st
	}
	<-s.loopDone
	return s.final
}

// Detach ends the session as Close does but keeps its current socket
// open and returns it, for a new session on the same port (Config.Conn).
// It returns nil when the session was already closed or detached.
func (s *Session) Detach() (*net.UDPConn, error) {
	var keep *net.UDPConn
	s.closeOnce.Do(func() {
		close(s.closing)
		s.mu.Lock()
		s.closed = true
		readers := s.readers
		s.readers = nil
		s.mu.Unlock()
		// Wake the readers without closing their sockets.
		for _, r := range readers {
			_ = r.conn.SetReadDeadline(time.Now())
			close(r.stop)
		}
		s.wg.Wait()
		keep = s.eng.conn // the socket the session sent on (run has exited)
		for _, r := range readers {
			if r.conn == keep {
				continue
			}
			if err := r.conn.Close(); err != nil && s.closeErr == nil {
				s.closeErr = fmt.Errorf("media: detach: %w", err)
			}
		}
		if keep != nil {
			_ = keep.SetReadDeadline(time.Time{})
		}
		s.eng.impair.close()
		if err := s.eng.close(); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("media: detach codec state: %w", err)
		}
		s.log.Debug("media session detached from its socket")
	})
	return keep, s.closeErr
}

// Close stops sending and playout, closes the socket and returns after
// every goroutine of the session has exited. It is idempotent.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.mu.Lock()
		s.closed = true
		readers := s.readers
		s.readers = nil
		s.mu.Unlock()
		for _, r := range readers {
			if err := r.conn.Close(); err != nil && s.closeErr == nil {
				s.closeErr = fmt.Errorf("media: close: %w", err)
			}
			close(r.stop)
		}
		s.wg.Wait()
		s.eng.impair.close()
		if err := s.eng.close(); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("media: close codec state: %w", err)
		}
		s.log.Debug("media session closed")
	})
	return s.closeErr
}

// exec runs fn on the timeline goroutine and waits for it. It reports
// false when the timeline has exited.
func (s *Session) exec(fn func()) bool {
	done := make(chan struct{})
	select {
	case s.cmds <- func() { fn(); close(done) }:
		<-done
		return true
	case <-s.loopDone:
		return false
	}
}

func (s *Session) addReader(conn *net.UDPConn) (*socketReader, bool) {
	r := &socketReader{conn: conn, stop: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	s.readers = append(s.readers, r)
	s.wg.Add(1)
	go s.read(r)
	return r, true
}

// dropReader stops a reader that never became current.
func (s *Session) dropReader(r *socketReader) {
	s.mu.Lock()
	i := slices.Index(s.readers, r)
	if i >= 0 {
		s.readers = slices.Delete(s.readers, i, i+1)
	}
	s.mu.Unlock()
	if i >= 0 {
		stopReader(r)
	}
}

func stopReader(r *socketReader) {
	_ = r.conn.Close()
	close(r.stop)
	<-r.done
}

// read is a socket reader goroutine.
func (s *Session) read(r *socketReader) {
	defer s.wg.Done()
	defer close(r.done)
	var d *datagram
	defer func() {
		if d != nil {
			s.free <- d // never blocks: free holds the whole pool
		}
	}()
	var failures uint64
	for {
		if d == nil {
			select {
			case d = <-s.free:
			case <-r.stop:
				return
			case <-s.closing:
				return
			}
		}
		n, from, err := r.conn.ReadFromUDPAddrPort(d.buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-r.stop: // Detach's deadline, or a reader dropped
				return
			case <-s.closing:
				return
			default:
			}
			// Transient errors (an ICMP error surfaced on some systems)
			// must not end the call; back off if they repeat.
			failures++
			logCount(s.log, "udp read failed", failures, err)
			if failures%16 == 0 && !s.pause(r) {
				return
			}
			continue
		}
		failures = 0
		if n == len(d.buf) {
			// It filled the buffer, so it may have been truncated: it is
			// not an RTP audio packet of ours.
			s.oversize.Add(1)
			continue
		}
		from = unmap(from)
		unverified := false
		if !s.peers.Load().allows(from) {
			if !s.latch {
				s.wrongSource.Add(1)
				continue
			}
			unverified = true
		}
		d.n, d.from, d.at, d.unverified = n, from, time.Now(), unverified
		s.ready <- d // never blocks: ready holds the whole pool
		d = nil
	}
}

// pause waits one ptime, or reports false if the reader must stop.
func (s *Session) pause(r *socketReader) bool {
	t := time.NewTimer(s.ptime)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.stop:
		return false
	case <-s.closing:
		return false
	}
}

// run is the timeline goroutine.
func (s *Session) run() {
	defer s.wg.Done()
	defer close(s.loopDone)
	defer func() {
		if s.ticker != nil {
			s.ticker.Stop()
		}
		if s.call != nil {
			s.call.Leave()
		}
		s.final = s.snapshot()
	}()
	var tick <-chan time.Time
	for {
		if s.ticker != nil {
			tick = s.ticker.C
		}
		if s.call != nil {
			tick = s.call.C
		}
		select {
		case <-s.closing:
			return
		case fn := <-s.cmds:
			fn()
		case d := <-s.ready:
			v := s.eng.recv.receive(d.buf[:d.n], d.at)
			if d.unverified {
				s.latchVerdict(d.from, v)
			}
			if v.authentic() {
				s.prove(d.from, d.at)
			}
			s.free <- d
		case now := <-tick:
			s.onTick(now)
		}
	}
}

func (s *Session) start() {
	if s.started {
		return
	}
	s.started = true
	s.t0 = time.Now()
	if s.eng.batch != nil {
		// On the shared clock: the timeline starts at its latest tick, so
		// this session's ticks are the other calls' (one batch each).
		t := s.eng.batch.Ticker(s.ptime)
		s.call = t.Join()
		s.t0 = t.Align(s.t0)
	} else {
		s.ticker = time.NewTicker(s.ptime)
	}
	s.tick(s.t0)
	s.ticks = 1
	s.log.Debug("media session started")
}

// onTick runs every tick that is due by now: tick k is due at t0+k*ptime.
// Replaying overdue ticks keeps the packet count, the timestamps and the
// sink's frame count true to the wall clock when the goroutine ran late.
func (s *Session) onTick(now time.Time) {
	due := int64(now.Sub(s.t0)/s.ptime) + 1
	if behind := due - s.ticks; behind > maxCatchUp {
		skipped := behind - 1
		s.eng.send.skip(uint32(skipped))
		s.eng.jb.skip(skipped)
		s.ticks += skipped
		s.log.Warn("media timeline stalled; skipped ticks", "ticks", skipped)
	}
	if s.pendingSwap != nil && s.ticks < due {
		s.applySwap(s.pendingSwap)
		s.pendingSwap = nil
	}
	for ; s.ticks < due; s.ticks++ {
		s.tick(s.t0.Add(time.Duration(s.ticks) * s.ptime))
	}
}

// tick sends one frame (or accounts for not sending it) and plays one.
// Only a remote with consent gets every frame; one without gets a probe
// per ConsentProbeInterval (the first at once) and nothing in between.
func (s *Session) tick(at time.Time) {
	p := s.peers.Load()
	send := false
	if s.sending.Load() && p != nil && p.remote.IsValid() {
		switch {
		case s.checkConsent(p, at):
			send = true
		case s.probeInterval > 0 && (p.remote != s.probeFor || at.Sub(s.lastProbe) >= s.probeInterval):
			s.probeFor, s.lastProbe = p.remote, at
			s.probes++
			send = true
		default:
			s.notSent++
		}
	}
	s.eng.mute = s.muted.Load()
	if s.call != nil {
		s.eng.batchTick(s.call, at, p.remoteOrZero(), send)
		return
	}
	if send {
		s.eng.sendFrame(p.remote)
	} else {
		s.eng.skipFrame()
	}
	s.eng.playout(at)
}

func (p *peerSet) remoteOrZero() netip.AddrPort {
	if p == nil {
		return netip.AddrPort{}
	}
	return p.remote
}

// prove records that an authenticated packet (for plain RTP: a valid one
// from an allowed address) arrived from addr at at.
func (s *Session) prove(addr netip.AddrPort, at time.Time) {
	if _, ok := s.proof[addr]; !ok && len(s.proof) >= maxProofs {
		var oldest netip.AddrPort
		var t time.Time
		for a, pt := range s.proof {
			if t.IsZero() || pt.Before(t) {
				oldest, t = a, pt
			}
		}
		delete(s.proof, oldest)
	}
	s.proof[addr] = at
}

// hasConsent says whether p's remote may get full-rate media at at: it
// was confirmed by the caller or proved it is the peer (an authenticated
// packet from it), and the latest of those is not older than
// ConsentTimeout (RFC 7675 §5.1: consent expires after 30 s without a
// fresh proof).
func (s *Session) hasConsent(p *peerSet, at time.Time) bool {
	last, ok := s.proof[p.remote]
	if p.confirmed && (!ok || p.since.After(last)) {
		last, ok = p.since, true
	}
	if !ok {
		return false
	}
	return s.consentTimeout <= 0 || at.Sub(last) <= s.consentTimeout
}

// checkConsent is hasConsent for the tick, counting and logging changes.
func (s *Session) checkConsent(p *peerSet, at time.Time) bool {
	ok := s.hasConsent(p, at)
	switch {
	case p.remote != s.consentFor:
		s.consentFor = p.remote
		if !ok {
			s.log.Info("remote not confirmed; sending consent probes only until it proves it receives", "remote", p.remote)
		}
	case s.consented && !ok:
		s.consentLapses++
		s.log.Warn("consent lapsed: nothing authenticated from the remote; sending consent probes only",
			"remote", p.remote, "timeout", s.consentTimeout, "lapses", s.consentLapses)
	case !s.consented && ok:
		s.log.Info("remote confirmed; sending media", "remote", p.remote)
	}
	s.consented = ok
	return ok
}

// requestSwap schedules a socket switch for the next tick, just before its
// packet is sent (immediately when not started). The previous packet left
// the old socket a whole ptime earlier, so when the peer is told about the
// new address nothing from the old one is normally still in flight.
func (s *Session) requestSwap(req *swapRequest) {
	if !s.started {
		s.applySwap(req)
		return
	}
	s.pendingSwap = req
}

func (s *Session) applySwap(req *swapRequest) {
	old := s.eng.conn
	s.eng.conn = req.conn
	s.eng.rebinds++
	req.done <- old
}

// snapshot runs on the timeline goroutine.
func (s *Session) snapshot() Stats {
	st := s.eng.stats()
	st.WrongSource = s.wrongSource.Load()
	st.Latched = s.latched.Load()
	st.Malformed += s.oversize.Load()
	st.ConsentLapses, st.ConsentProbes, st.NotSentNoConsent = s.consentLapses, s.probes, s.notSent
	if p := s.peers.Load(); p != nil && p.remote.IsValid() {
		st.RemoteConfirmed = s.hasConsent(p, time.Now())
	}
	return st
}
