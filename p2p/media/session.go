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
// processes every received datagram. It is the only goroutine: there is no
// reader per socket. At each tick, and before each command, the timeline
// drains its sockets without blocking (recvmmsg(2) with MSG_DONTWAIT on
// Linux), each datagram stamped with the time the kernel received it
// (SO_TIMESTAMPNS), so the jitter buffer sees true arrival times although
// a datagram waits in the socket until the tick that plays it. A packet
// costs no goroutine wake-up and no hand-off; before Start a drain-only
// tick keeps the socket read. Public methods either touch small atomically
// published values (remote address, allowed sources, the sending switch)
// or submit work to the timeline and wait for it, like pion/ice's task
// loop.
type Session struct {
	log   *slog.Logger
	ssrc  uint32
	ptime time.Duration

	cmds     chan func()
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

	mu     sync.Mutex // guards closed, socks' updates, local
	closed bool
	// socks are the sockets the timeline drains: the current one, and
	// during Rebind the next one. Published whole (copy on write) so the
	// timeline reads it without the lock.
	socks atomic.Pointer[[]*rxSocket]
	local netip.AddrPort

	rebindMu  sync.Mutex // one Rebind at a time
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
	// final is the last snapshot, written by the timeline before loopDone
	// is closed.
	final Stats

	// Owned by the timeline goroutine.
	rx           *rxBatch
	handle       func(p []byte, from netip.AddrPort, at time.Time, truncated bool)
	readFailures uint64
	eng          *engine
	started      bool
	// ticker drains the sockets before Start and paces the timeline after
	// it; a session on a batch codec paces on call instead (stopped ticker).
	ticker *time.Ticker
	// call is the session's membership of its batch codec's shared
	// Ticker, nil for other codecs.
	call *codecs.TickerCall
	// cont is Config.ContinueTicks; realign says the ticker was set for
	// the first tick of a continued timeline and must then tick every
	// ptime.
	cont        time.Time
	realign     bool
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
	// clock is Config.Now (nil: none); rxClock is its time at the drain
	// in progress, firstAt and lastAt the first and latest accepted
	// packet on it (Stats.FirstPacket, LastPacket).
	clock                    func() time.Time
	rxClock, firstAt, lastAt time.Time
}

// maxProofs bounds the addresses whose proof is remembered: the peer's
// current and previous addresses, a handoff's new device.
const maxProofs = 8

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
		closing:  make(chan struct{}),
		loopDone: make(chan struct{}),
		local:    bound,
		eng:      eng,
		latch:    set.LatchAuthenticated && set.RecvKeys != nil,
		cont:     set.ContinueTicks,

		consentTimeout: set.ConsentTimeout,
		probeInterval:  set.ConsentProbeInterval,
		proof:          make(map[netip.AddrPort]time.Time, maxProofs),
		clock:          set.Now,
	}
	s.sending.Store(true)
	s.rx = newRxBatch(set.datagramCap)
	s.handle = s.handleDatagram
	if _, err := s.addSocket(conn); err != nil {
		_ = conn.Close()
		_ = eng.close()
		return nil, fmt.Errorf("media: open: %w", err)
	}
	// Drain-only ticks until Start: what arrives before is checked,
	// counted and buffered for playout.
	s.ticker = time.NewTicker(s.ptime)
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
// and the highest sequence number authenticated under it (RFC 3711
// §3.3.1), for handing them to a session that takes the stream over.
// Before any packet was played it is Config.RemoteROC, if the session
// was given one. ok is false otherwise, and for plain RTP.
func (s *Session) RemoteROC() (roc ROC, ok bool) {
	s.exec(func() {
		if !s.eng.jb.hasSource {
			roc, ok = s.eng.recv.handedROC()
			return
		}
		roc, ok = s.eng.recv.index(s.eng.jb.src.ssrc)
	})
	return roc, ok
}

// SendIndex returns the SRTP packet index of this session's own stream
// (RFC 3711 §3.3.1): its SSRC, roll-over counter and the sequence number
// of the last packet sent. A peer that starts receiving the stream mid-way
// (a handoff's new device) needs it: the sender is the one that knows.
// ok is false before the first packet and for plain RTP.
func (s *Session) SendIndex() (roc ROC, ok bool) {
	s.exec(func() { roc, ok = s.eng.send.index() })
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
// learns the new one), then closes the old socket. Packets waiting in the
// old socket when it is closed are still processed. It tells nobody: the signaling
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
	x, err := s.addSocket(conn)
	if err != nil {
		_ = conn.Close()
		return netip.AddrPort{}, fmt.Errorf("media: rebind %s: %w", local, err)
	}
	req := &swapRequest{conn: conn, done: make(chan *net.UDPConn, 1)}
	select {
	case s.cmds <- func() { s.requestSwap(req) }:
	case <-ctx.Done():
		s.dropSocket(x)
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
	var oldSock *rxSocket
	if socks := s.socks.Load(); socks != nil {
		if i := slices.IndexFunc(*socks, func(x *rxSocket) bool { return x.conn == old }); i >= 0 {
			oldSock = (*socks)[i]
		}
	}
	s.mu.Unlock()
	if oldSock != nil {
		// What the old socket still holds is processed (s.exec drains
		// every socket first), then it is dropped and closed.
		s.exec(func() {})
		s.dropSocket(oldSock)
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
		socks := s.takeSockets()
		s.mu.Unlock()
		s.wg.Wait()
		keep = s.eng.conn // the socket the session sent on (run has exited)
		for _, x := range socks {
			if x.conn == keep {
				continue
			}
			if err := x.conn.Close(); err != nil && s.closeErr == nil {
				s.closeErr = fmt.Errorf("media: detach: %w", err)
			}
		}
		if keep != nil {
			_ = keep.SetReadDeadline(time.Time{}) // the portable drain sets deadlines
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
		socks := s.takeSockets()
		s.mu.Unlock()
		for _, x := range socks {
			if err := x.conn.Close(); err != nil && s.closeErr == nil {
				s.closeErr = fmt.Errorf("media: close: %w", err)
			}
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

// addSocket adds conn to the sockets the timeline drains.
func (s *Session) addSocket(conn *net.UDPConn) (*rxSocket, error) {
	x, err := newRxSocket(conn, s.rx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	var next []*rxSocket
	if old := s.socks.Load(); old != nil {
		next = slices.Clone(*old)
	}
	next = append(next, x)
	s.socks.Store(&next)
	return x, nil
}

// dropSocket stops draining x and closes its socket.
func (s *Session) dropSocket(x *rxSocket) {
	s.mu.Lock()
	found := false
	if old := s.socks.Load(); old != nil {
		if i := slices.Index(*old, x); i >= 0 {
			next := slices.Delete(slices.Clone(*old), i, i+1)
			s.socks.Store(&next)
			found = true
		}
	}
	s.mu.Unlock()
	if found {
		_ = x.conn.Close()
	}
}

// takeSockets empties the drained set and returns what it held. s.mu is
// held.
func (s *Session) takeSockets() []*rxSocket {
	old := s.socks.Swap(nil)
	if old == nil {
		return nil
	}
	return *old
}

// drain processes every datagram waiting on the session's sockets. It
// runs on the timeline.
func (s *Session) drain() {
	socks := s.socks.Load()
	if socks == nil {
		return
	}
	now := time.Now()
	if s.clock != nil {
		s.rxClock = s.clock()
	}
	for _, x := range *socks {
		err := x.drain(s.rx, now, s.handle)
		if err != nil && !errors.Is(err, net.ErrClosed) {
			// Transient errors (an ICMP error surfaced on some systems)
			// must not end the call: the next tick reads again.
			s.readFailures++
			logCount(s.log, "udp read failed", s.readFailures, err)
		}
	}
}

// handleDatagram checks where one received datagram came from and feeds it
// to the receiver; at is when it arrived. It runs on the timeline.
func (s *Session) handleDatagram(p []byte, from netip.AddrPort, at time.Time, truncated bool) {
	if truncated {
		// It filled the buffer, so it may have been truncated: it is
		// not an RTP audio packet of ours.
		s.oversize.Add(1)
		return
	}
	from = unmap(from)
	// unverified: from an address not allowed (yet); accepted only if it
	// authenticates (Config.LatchAuthenticated).
	unverified := false
	if !s.peers.Load().allows(from) {
		if !s.latch {
			s.wrongSource.Add(1)
			return
		}
		unverified = true
	}
	before := s.eng.recv.packets
	v := s.eng.recv.receive(p, at)
	if s.clock != nil && s.eng.recv.packets != before {
		if s.firstAt.IsZero() {
			s.firstAt = s.rxClock
		}
		s.lastAt = s.rxClock
	}
	if unverified {
		s.latchVerdict(from, v)
	}
	if v.authentic() {
		s.prove(from, at)
	}
}

// run is the timeline goroutine.
func (s *Session) run() {
	defer s.wg.Done()
	defer close(s.loopDone)
	defer func() {
		s.ticker.Stop()
		if s.call != nil {
			s.call.Leave()
		}
		s.final = s.snapshot()
	}()
	for {
		tick := s.ticker.C
		if s.call != nil {
			tick = s.call.C
		}
		select {
		case <-s.closing:
			return
		case fn := <-s.cmds:
			// A command sees every datagram that arrived before it.
			s.drain()
			fn()
		case now := <-tick:
			if s.realign {
				s.realign = false
				s.ticker.Reset(s.ptime)
			}
			s.drain()
			if s.started {
				s.onTick(now)
			}
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
		s.ticker.Stop()
	} else if first, ok := continueTimeline(s.t0, s.cont, s.ptime); ok {
		s.t0 = first
		if wait := first.Sub(time.Now()); wait > 0 {
			// The first tick is the old timeline's next one: tick then,
			// and every ptime from there (run resets the ticker).
			s.ticker.Reset(wait)
			s.realign = true
			s.log.Debug("media session started, continuing the ticks of the session it replaces", "first_tick_in", wait)
			return
		}
		s.ticker.Reset(s.ptime)
		s.onTick(time.Now()) // the old timeline's overdue tick, at once
		s.log.Debug("media session started, continuing the ticks of the session it replaces")
		return
	} else {
		s.ticker.Reset(s.ptime) // tick k is due at t0+k*ptime from now on
	}
	if s.eng.poller != nil {
		s.eng.poller.Poll()
	}
	s.tick(s.t0)
	s.ticks = 1
	s.log.Debug("media session started")
}

// continueTimeline is the first tick of a session started at now that
// continues a timeline whose next tick is next (Config.ContinueTicks):
// next itself when it is due within one ptime from now or less than one
// ptime past, or the one of next's ticks in (now, now+ptime] when next
// is further ahead. ok is false when there is no timeline to continue
// (next zero) or next is a ptime or more past.
func continueTimeline(now, next time.Time, ptime time.Duration) (time.Time, bool) {
	if next.IsZero() {
		return time.Time{}, false
	}
	ahead := next.Sub(now)
	switch {
	case ahead <= -ptime:
		return time.Time{}, false
	case ahead > ptime:
		next = next.Add(-((ahead - 1) / ptime) * ptime)
	}
	return next, true
}

// NextTick is when the session's next tick is due (the time its next
// frame would be read from the Source and sent), for Config.ContinueTicks
// of a session that replaces it. After Close it is the tick the session
// did not run any more: call it after Close, so that no tick of the old
// session can run at the time the new one starts with. Zero when the
// session was never started.
func (s *Session) NextTick() time.Time {
	var next time.Time
	if s.exec(func() { next = s.nextTick() }) {
		return next
	}
	<-s.loopDone // the timeline has exited: its state is final
	return s.nextTick()
}

// nextTick runs on the timeline, or after it exited.
func (s *Session) nextTick() time.Time {
	if !s.started {
		return time.Time{}
	}
	return s.t0.Add(time.Duration(s.ticks) * s.ptime)
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
	if s.ticks < due && s.eng.poller != nil {
		s.eng.poller.Poll() // once, before the frames of this wake-up are read
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
	if s.clock != nil {
		st.FirstPacket, st.LastPacket = s.firstAt, s.lastAt
	}
	if p := s.peers.Load(); p != nil && p.remote.IsValid() {
		st.RemoteConfirmed = s.hasConsent(p, time.Now())
	}
	return st
}
