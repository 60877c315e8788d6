package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"

	"github.com/baton-voice/baton/sipbridge/sdp"
)

// RTCP on the SIP legs (RFC 3550 §6). Each leg has an RTCP socket of its
// own next to the RTP one (advertised with a=rtcp, RFC 3605, when it is
// not the RTP port + 1), or shares the RTP socket when the SDP exchange
// agreed on rtcp-mux (RFC 5761; the packets are told apart by their
// second octet, §4). The leg sends a compound packet (SR, or RR while it
// sends nothing, with a reception report block for the phone's stream,
// then SDES CNAME: §6.1) at the RFC 3550 §6.2 minimum interval, 5 s,
// randomized to 0.5-1.5 times, the first after half of it. On an
// SDES-SRTP leg both ways are SRTCP (RFC 3711 §3.4), from the same master
// keys as the leg's SRTP, in contexts of their own.
//
// Like RTP (RFC 4961 symmetric RTP), RTCP is taken only from the latched
// peer: its host (before RTP has latched, a host RTP may latch onto), and
// with rtcp-mux its RTP address; without mux the first RTCP packet from
// that host latches the port, and packets from anywhere else are dropped
// and counted (RTCPWrongSource). The phone's
// reports about our stream (fraction lost, cumulative loss, jitter, and
// the round trip from LSR/DLSR, §6.4.1) are kept for the control API.
type legRTCP struct {
	conn *net.UDPConn // our RTCP socket; unused with rtcp-mux

	interval atomic.Int64 // nanoseconds; rtcpInterval unless a test sets it
	start    sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup

	// sent-side counters for the SR sender info (RFC 3550 §6.4.1), owned
	// by the send path, read by the report loop.
	sentPackets, sentOctets atomic.Uint32
	lastTS                  atomic.Uint32
	lastTSAt                atomic.Int64 // unix nanos of lastTS
	sentAny                 atomic.Bool  // an RTP packet since the last report

	mu      sync.Mutex
	mux     bool
	dest    netip.AddrPort // where we send RTCP without mux: the SDP's, then the latched source
	latched bool
	clock   int    // the phone's RTP clock rate
	cname   string // RFC 7022: random per leg
	rx      recvStats
	far     farReport
	// SRTCP contexts (srtp.go keys them); nil on a plain leg.
	srtcpRx, srtcpTx *srtpDir
	dec, enc         []byte
	hdr              rtcp.Header

	stats rtcpStats
}

// rtcpStats are the leg's RTCP counters.
type rtcpStats struct {
	Received, Sent, WrongSource, Malformed, SRTCPAuthFailed atomic.Uint64
}

// recvStats is what the leg measures of the phone's RTP stream for its
// reception report block (RFC 3550 §6.4.1, Appendix A.1, A.3, A.8).
type recvStats struct {
	have                         bool
	ssrc                         uint32
	baseSeq, maxSeq              uint16
	cycles                       uint32
	received                     uint32
	expectedPrior, receivedPrior uint32
	transit                      int64
	jitter                       float64 // in RTP timestamp units
	startAt                      time.Time
	lastSR                       uint32 // middle 32 bits of the phone's last SR NTP time
	lastSRAt                     time.Time
	fractionLostOut, cumLostOut  int64 // our last report's values, for the API
}

// farReport is the phone's last reception report about our stream.
type farReport struct {
	reports      uint64
	fractionLost uint8
	totalLost    uint32
	jitter       uint32 // RTP timestamp units
	rtt          time.Duration
}

// rtcpInterval is RFC 3550 §6.2's minimum report interval.
const rtcpInterval = 5 * time.Second

// RTCPInfo is a SIP leg's RTCP, for the control API (LegInfo.RTCP).
type RTCPInfo struct {
	// Mux says RTCP shares the RTP port (rtcp-mux, RFC 5761); Local and
	// Remote are our RTCP address and where we send it.
	Mux    bool   `json:"mux"`
	Local  string `json:"local,omitempty"`
	Remote string `json:"remote,omitempty"`
	// Received and Sent count compound RTCP packets; WrongSource those
	// from anyone but the latched peer, Malformed those that do not
	// parse, SRTCPAuthFailed those that fail SRTCP authentication or
	// replay checks; all three are dropped.
	Received        uint64 `json:"packets_received"`
	Sent            uint64 `json:"packets_sent"`
	WrongSource     uint64 `json:"wrong_source"`
	Malformed       uint64 `json:"malformed"`
	SRTCPAuthFailed uint64 `json:"srtcp_auth_failed"`
	// FarReports counts the phone's reception reports about our stream;
	// FarFractionLost (0-1), FarPacketsLost and FarJitterMS are its last
	// one, RTTMS the round trip it implies (LSR/DLSR, RFC 3550 §6.4.1),
	// 0 until the phone echoes one of our SRs.
	FarReports      uint64  `json:"far_reports"`
	FarFractionLost float64 `json:"far_fraction_lost"`
	FarPacketsLost  uint32  `json:"far_packets_lost"`
	FarJitterMS     float64 `json:"far_jitter_ms"`
	RTTMS           float64 `json:"rtt_ms,omitempty"`
	// PacketsLost and JitterMS are our measure of the phone's stream, as
	// our reports to it say.
	PacketsLost int64   `json:"packets_lost"`
	JitterMS    float64 `json:"jitter_ms"`
}

// openRTCP opens the leg's RTCP socket on ip: the RTP port + 1 when it is
// free (RFC 3550 §11), else any port (named in a=rtcp).
func (l *leg) openRTCP(ip netip.Addr) error {
	l.rtcp.stop = make(chan struct{})
	l.rtcp.interval.Store(int64(rtcpInterval))
	var b [16]byte
	_, _ = rand.Read(b[:])
	l.rtcp.cname = hex.EncodeToString(b[:])
	port := l.LocalAddr().Port()
	var conn *net.UDPConn
	var err error
	if port < 65535 {
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, port+1)))
	}
	if conn == nil {
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	}
	if err != nil {
		return fmt.Errorf("gateway: open RTCP port on %s: %w", ip, err)
	}
	l.rtcp.conn = conn
	l.rtcp.dec = make([]byte, 0, 1500)
	l.rtcp.enc = make([]byte, 0, 1500)
	l.rtcp.wg.Add(1)
	go l.rtcpReadLoop()
	return nil
}

// rtcpPort is our RTCP port for the SDP.
func (l *leg) rtcpPort() int {
	if l.rtcp.conn == nil {
		return 0
	}
	return int(l.rtcp.conn.LocalAddr().(*net.UDPAddr).Port)
}

// setRTCP applies the far SDP's RTCP attributes (rtcp-mux agreed, or where
// its RTCP goes) and starts the report loop on the first one. A new
// destination unlatches RTCP, as a new RTP address unlatches RTP.
func (l *leg) setRTCP(o *sdp.Offer, clock int) {
	r := &l.rtcp
	r.mu.Lock()
	r.mux = o.RTCPMux
	if d := o.RTCPDest(); d != r.dest || !r.latched {
		r.dest, r.latched = d, false
	}
	r.clock = clock
	if r.clock <= 0 {
		r.clock = 8000
	}
	r.mu.Unlock()
	r.start.Do(func() {
		r.wg.Add(1)
		go l.rtcpReportLoop()
	})
}

// closeRTCP stops the report loop and the RTCP socket and waits for both.
func (l *leg) closeRTCP() {
	if l.rtcp.stop == nil {
		return
	}
	close(l.rtcp.stop)
	if l.rtcp.conn != nil {
		_ = l.rtcp.conn.Close()
	}
	l.rtcp.wg.Wait()
}

// isRTCP tells RTCP from RTP on a multiplexed port: the second octet of
// RTCP is its packet type, 192-223 (RFC 5761 §4).
func isRTCP(b []byte) bool { return len(b) >= 2 && b[1] >= 192 && b[1] <= 223 }

// rtcpMuxed is readLoop's hook: a packet on the RTP port that is RTCP of
// a multiplexed leg is handled here (true), anything else is RTP.
func (l *leg) rtcpMuxed(b []byte, from netip.AddrPort) bool {
	if !isRTCP(b) {
		return false
	}
	l.rtcp.mu.Lock()
	mux := l.rtcp.mux
	l.rtcp.mu.Unlock()
	if !mux {
		return false
	}
	l.handleRTCP(b, from, true)
	return true
}

func (l *leg) rtcpReadLoop() {
	defer l.rtcp.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := l.rtcp.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		l.handleRTCP(buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), false)
	}
}

// handleRTCP takes one RTCP packet from the phone: source check, SRTCP,
// parse, then the reports about our stream and the phone's SR time.
func (l *leg) handleRTCP(data []byte, from netip.AddrPort, muxed bool) {
	l.mu.Lock()
	rtpPeer, rtpLatched := l.remote, l.latched
	// Before RTP has latched (a phone may report first), the hosts RTP
	// may latch onto: the SDP's and the one the phone signals from.
	hostOK := (rtpLatched && from.Addr() == rtpPeer.Addr()) || (!rtpLatched && l.mayLatch(from.Addr()) && from != l.left)
	ourSSRC := l.pkt.SSRC
	l.mu.Unlock()
	r := &l.rtcp
	r.mu.Lock()
	defer r.mu.Unlock()
	// Only the latched RTP peer's host; with mux its very RTP address,
	// without it the RTCP address latched by its first packet.
	ok := hostOK && (!muxed || (rtpLatched && from == rtpPeer)) &&
		(muxed || !r.latched || from == r.dest)
	if !ok {
		r.stats.WrongSource.Add(1)
		return
	}
	if r.srtcpRx != nil {
		out, err := r.srtcpRx.rtcp.DecryptRTCP(r.dec[:0], data, &r.hdr)
		if err != nil {
			r.stats.SRTCPAuthFailed.Add(1)
			return
		}
		r.dec = out[:0]
		data = out
	}
	pkts, err := rtcp.Unmarshal(data)
	if err != nil {
		r.stats.Malformed.Add(1)
		return
	}
	if !muxed && !r.latched {
		r.dest, r.latched = from, true
	}
	r.stats.Received.Add(1)
	now := time.Now()
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.SenderReport:
			r.rx.lastSR = uint32(p.NTPTime >> 16)
			r.rx.lastSRAt = now
			r.takeReports(p.Reports, ourSSRC, now)
		case *rtcp.ReceiverReport:
			r.takeReports(p.Reports, ourSSRC, now)
		}
	}
}

// takeReports keeps the phone's report block about our stream. r.mu held.
func (r *legRTCP) takeReports(reports []rtcp.ReceptionReport, ours uint32, now time.Time) {
	for _, rr := range reports {
		if rr.SSRC != ours {
			continue
		}
		r.far.reports++
		r.far.fractionLost, r.far.totalLost, r.far.jitter = rr.FractionLost, rr.TotalLost&0xffffff, rr.Jitter
		if rr.LastSenderReport != 0 {
			// RTT = A - LSR - DLSR, in 1/65536 s (RFC 3550 §6.4.1).
			a := ntpMiddle(now)
			if rtt := int64(a) - int64(rr.LastSenderReport) - int64(rr.Delay); rtt >= 0 {
				r.far.rtt = time.Duration(rtt) * time.Second / 65536
			}
		}
	}
}

// rtcpOnRTP is readLoop's hook for every RTP packet taken from the
// latched phone: the reception statistics of RFC 3550 A.1 (sequence
// numbers with cycles) and A.8 (interarrival jitter).
func (l *leg) rtcpOnRTP(ssrc uint32, seq uint16, ts uint32, now time.Time) {
	r := &l.rtcp
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.rx
	clock := r.clock
	if clock <= 0 {
		clock = 8000
	}
	arrival := int64(now.Sub(s.startAt)) * int64(clock) / int64(time.Second)
	if !s.have || s.ssrc != ssrc {
		*s = recvStats{have: true, ssrc: ssrc, baseSeq: seq, maxSeq: seq, received: 1, startAt: now,
			lastSR: s.lastSR, lastSRAt: s.lastSRAt}
		s.transit = -int64(ts)
		return
	}
	s.received++
	switch d := seq - s.maxSeq; {
	case d == 0:
	case d < 3000: // in order, maybe with a gap (A.1's MAX_DROPOUT)
		if seq < s.maxSeq {
			s.cycles += 1 << 16
		}
		s.maxSeq = seq
	case d <= 65536-100: // a jump: the phone restarted its sequence
		s.baseSeq, s.maxSeq, s.cycles, s.received, s.expectedPrior, s.receivedPrior = seq, seq, 0, 1, 0, 0
	default: // late or duplicate
	}
	transit := arrival - int64(ts)
	d := transit - s.transit
	s.transit = transit
	if d < 0 {
		d = -d
	}
	s.jitter += (float64(d) - s.jitter) / 16
}

// rtcpOnSend is the send path's hook for every RTP packet sent to the
// phone (timestamp, payload octets), for the SR sender info.
func (l *leg) rtcpOnSend(ts uint32, octets int) {
	l.rtcp.sentPackets.Add(1)
	l.rtcp.sentOctets.Add(uint32(octets))
	l.rtcp.lastTS.Store(ts)
	l.rtcp.lastTSAt.Store(time.Now().UnixNano())
	l.rtcp.sentAny.Store(true)
}

func (l *leg) rtcpReportLoop() {
	defer l.rtcp.wg.Done()
	wait := time.Duration(l.rtcp.interval.Load()) / 2 // §6.2: the first after half
	for {
		t := time.NewTimer(randomized(wait))
		select {
		case <-l.rtcp.stop:
			t.Stop()
			return
		case <-t.C:
		}
		l.sendReport(time.Now())
		wait = time.Duration(l.rtcp.interval.Load())
	}
}

// randomized is d times a random factor in [0.5, 1.5) (RFC 3550 §6.3.1).
func randomized(d time.Duration) time.Duration {
	return d/2 + time.Duration(mrand.Int64N(int64(d)+1))
}

// sendReport sends one compound RTCP packet to the phone.
func (l *leg) sendReport(now time.Time) {
	l.mu.Lock()
	rtpPeer, closed, sending := l.remote, l.closed, l.sending
	ourSSRC := l.pkt.SSRC
	l.mu.Unlock()
	r := &l.rtcp
	r.mu.Lock()
	defer r.mu.Unlock()
	dest, conn := r.dest, r.conn
	if r.mux {
		dest, conn = rtpPeer, l.conn
	}
	if closed || !dest.IsValid() || dest.Port() == 0 || conn == nil {
		return
	}
	var blocks []rtcp.ReceptionReport
	if r.rx.have {
		blocks = append(blocks, r.rx.block(now))
	}
	var first rtcp.Packet
	if r.sentAny.Swap(false) && sending {
		clock := int64(r.clock)
		ts := r.lastTS.Load() + uint32(now.Sub(time.Unix(0, r.lastTSAt.Load())).Nanoseconds()*clock/int64(time.Second))
		first = &rtcp.SenderReport{SSRC: ourSSRC, NTPTime: ntpTime(now), RTPTime: ts,
			PacketCount: r.sentPackets.Load(), OctetCount: r.sentOctets.Load(), Reports: blocks}
	} else {
		first = &rtcp.ReceiverReport{SSRC: ourSSRC, Reports: blocks}
	}
	raw, err := rtcp.Marshal([]rtcp.Packet{first, rtcp.NewCNAMESourceDescription(ourSSRC, r.cname)})
	if err != nil {
		return
	}
	if r.srtcpTx != nil {
		out, err := r.srtcpTx.rtcp.EncryptRTCP(r.enc[:0], raw, &r.hdr)
		if err != nil {
			return
		}
		r.enc = out[:0]
		raw = out
	}
	if _, err := conn.WriteToUDPAddrPort(raw, dest); err == nil {
		r.stats.Sent.Add(1)
	}
}

// block is the reception report block for the phone's stream (RFC 3550
// §6.4.1, A.3): loss since the last report and in all, the extended
// highest sequence number, jitter, and LSR/DLSR. It advances the
// interval's priors.
func (s *recvStats) block(now time.Time) rtcp.ReceptionReport {
	ext := s.cycles + uint32(s.maxSeq)
	expected := ext - uint32(s.baseSeq) + 1
	lost := int64(expected) - int64(s.received)
	lost = max(min(lost, 0x7fffff), -0x800000)
	expInt := expected - s.expectedPrior
	recInt := s.received - s.receivedPrior
	s.expectedPrior, s.receivedPrior = expected, s.received
	var fraction uint8
	if lostInt := int64(expInt) - int64(recInt); expInt > 0 && lostInt > 0 {
		fraction = uint8(min(lostInt<<8/int64(expInt), 255))
	}
	s.fractionLostOut, s.cumLostOut = int64(fraction), lost
	rr := rtcp.ReceptionReport{SSRC: s.ssrc, FractionLost: fraction, TotalLost: uint32(lost) & 0xffffff,
		LastSequenceNumber: ext, Jitter: uint32(s.jitter)}
	if s.lastSR != 0 {
		rr.LastSenderReport = s.lastSR
		rr.Delay = uint32(now.Sub(s.lastSRAt) * 65536 / time.Second)
	}
	return rr
}

// ntpTime is t as a 64-bit NTP timestamp (RFC 3550 §4).
func ntpTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800 // 1900 to 1970 in seconds
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return secs<<32 | frac
}

// ntpMiddle is the middle 32 bits of t's NTP timestamp (LSR, §6.4.1).
func ntpMiddle(t time.Time) uint32 { return uint32(ntpTime(t) >> 16) }

// rtcpInfo is the leg's RTCP for the control API.
func (l *leg) rtcpInfo() *RTCPInfo {
	r := &l.rtcp
	r.mu.Lock()
	defer r.mu.Unlock()
	in := &RTCPInfo{Mux: r.mux,
		Received: r.stats.Received.Load(), Sent: r.stats.Sent.Load(), WrongSource: r.stats.WrongSource.Load(),
		Malformed: r.stats.Malformed.Load(), SRTCPAuthFailed: r.stats.SRTCPAuthFailed.Load(),
		FarReports: r.far.reports, FarFractionLost: float64(r.far.fractionLost) / 256, FarPacketsLost: r.far.totalLost,
		PacketsLost: r.rx.cumLostOut}
	clock := float64(r.clock)
	if clock <= 0 {
		clock = 8000
	}
	in.FarJitterMS = float64(r.far.jitter) * 1000 / clock
	in.JitterMS = r.rx.jitter * 1000 / clock
	in.RTTMS = float64(r.far.rtt) / float64(time.Millisecond)
	if r.conn != nil && !r.mux {
		in.Local = r.conn.LocalAddr().String()
	}
	if r.dest.IsValid() && !r.mux {
		in.Remote = r.dest.String()
	}
	return in
}

// setSRTCP keys SRTCP both ways from the leg's SRTP suite and keys (the
// far key decrypts, ours encrypts; RFC 3711 §4.3.2: SRTCP session keys
// come from the same master key), or turns it off. srtp.go calls it.
func (l *leg) setSRTCP(rx, tx *srtpDir) {
	l.rtcp.mu.Lock()
	l.rtcp.srtcpRx, l.rtcp.srtcpTx = rx, tx
	l.rtcp.mu.Unlock()
}
