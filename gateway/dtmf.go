package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/p2p/wire"
)

// DTMF through the gateway (issue 8 §3, docs/sip.md "DTMF").
//
// Phone -> P2P: the leg's readLoop hands every RFC 4733 packet to
// leg.dtmfReceived, which reports a digit once, when its first end packet
// arrives (the sender repeats the end packet three times, RFC 4733
// §2.5.1.4; the event's RTP timestamp tells the repeats apart from a new
// press of the same key, §2.5.2). The bridge sends it to the far P2P
// party as a dtmf message (docs/protocol.md §14). A phone that sends SIP
// INFO instead (application/dtmf-relay) is read by Gateway.onInfo.
//
// P2P -> phone: a call.dtmf event of the device's endpoint is queued on
// the leg; WriteFrame, paced by the media engine one frame per ptime, then
// sends RFC 4733 packets in place of audio (§2.5.1): the first with the
// marker bit, updates with a growing duration, the end packet three times,
// all with the event's start timestamp, on the audio stream's SSRC and
// sequence numbers; then a short gap of audio before the next digit. A
// phone that negotiated no telephone-event gets SIP INFO (bridge.sendInfo).

// ErrBadTelephoneEvent means an RFC 4733 payload could not be decoded.
var ErrBadTelephoneEvent = errors.New("gateway: bad telephone-event payload")

const (
	// eventPayloadLen is the size of an RFC 4733 §2.3 event payload.
	eventPayloadLen = 4
	// eventClockRate is the telephone-event clock the gateway offers
	// (a=rtpmap:101 telephone-event/8000) and assumes: its codecs are all
	// 8 kHz.
	eventClockRate = 8000
	// eventVolume is the power level sent: -10 dBm0 (RFC 4733 §2.3.4
	// says the DTMF range is 0 to -36 dBm0; phones commonly send 10).
	eventVolume = 10
	// eventEndPackets is how often the end of an event is sent
	// (RFC 4733 §2.5.1.4: three times).
	eventEndPackets = 3
	// eventGapFrames is the audio sent between two digits, in frames, after
	// the end packets: with them, an 80 ms pause at 20 ms ptime.
	eventGapFrames = 2
	// maxQueuedDigits bounds the digits waiting either way; more are
	// dropped and counted.
	maxQueuedDigits = 64
)

// telephoneEvent is an RFC 4733 §2.3 named-event payload.
type telephoneEvent struct {
	Event    uint8
	End      bool
	Volume   uint8  // 0-63: -dBm0
	Duration uint16 // in timestamp units since the event's start
}

// parseTelephoneEvent decodes an RFC 4733 payload. Bytes past the first
// 4 are ignored: one payload carries one event (§2.3); several events in
// one packet use RFC 2198 redundancy (§2.5.1.5), a payload type the
// gateway does not offer.
func parseTelephoneEvent(b []byte) (telephoneEvent, error) {
	if len(b) < eventPayloadLen {
		return telephoneEvent{}, fmt.Errorf("%w: %d bytes, want %d", ErrBadTelephoneEvent, len(b), eventPayloadLen)
	}
	return telephoneEvent{
		Event:    b[0],
		End:      b[1]&0x80 != 0,
		Volume:   b[1] & 0x3f, // the R bit (0x40) is reserved and ignored
		Duration: binary.BigEndian.Uint16(b[2:4]),
	}, nil
}

// appendTo appends the 4-byte payload of e to dst.
func (e telephoneEvent) appendTo(dst []byte) []byte {
	b1 := e.Volume & 0x3f
	if e.End {
		b1 |= 0x80
	}
	return append(dst, e.Event, b1, byte(e.Duration>>8), byte(e.Duration))
}

// dtmfDigit is one digit either way: the digit and its tone length.
type dtmfDigit struct {
	digit      byte
	durationMS int
}

// dtmfReceiver turns a phone's RFC 4733 packets into digits. It is owned
// by the leg's readLoop.
type dtmfReceiver struct {
	// the event being received: its start timestamp and code, and whether
	// it was reported already (its end seen)
	active   bool
	ts       uint32
	event    uint8
	reported bool
	lastDur  uint16
}

// packet takes one RFC 4733 packet and returns the digit it completes, if
// any. A digit is reported at its first end packet; the repeated end
// packets are dropped. When a new event starts before the previous one's
// end was seen (all three end packets lost), the previous digit is
// reported then, with the last duration heard.
func (r *dtmfReceiver) packet(h *rtp.Header, payload []byte) (done []dtmfDigit, err error) {
	ev, err := parseTelephoneEvent(payload)
	if err != nil {
		return nil, err
	}
	same := r.active && h.Timestamp == r.ts && ev.Event == r.event
	if !same {
		if r.active && !r.reported {
			if d, ok := digitOf(r.event, r.lastDur); ok {
				done = append(done, d)
			}
		}
		r.active, r.ts, r.event, r.reported = true, h.Timestamp, ev.Event, false
	}
	if ev.Duration > r.lastDur || !same {
		r.lastDur = ev.Duration
	}
	if ev.End && !r.reported {
		r.reported = true
		if d, ok := digitOf(ev.Event, ev.Duration); ok {
			done = append(done, d)
		}
	}
	return done, nil
}

// digitOf maps an event code and duration to a digit; codes that are not
// DTMF digits (16 flash, tones) are not.
func digitOf(event uint8, dur uint16) (dtmfDigit, bool) {
	c, ok := wire.DTMFDigit(event)
	if !ok {
		return dtmfDigit{}, false
	}
	return dtmfDigit{digit: c, durationMS: int(dur) * 1000 / eventClockRate}, true
}

// dtmfSender plays queued digits as RFC 4733 packets, one packet per
// frame WriteFrame is asked to send. Its queue is filled by the bridge
// (any goroutine); the rest is owned by WriteFrame.
type dtmfSender struct {
	mu    sync.Mutex
	queue []dtmfDigit
	// queued is len(queue), read without the lock by WriteFrame's fast
	// path: a frame with no digit to play costs one atomic load.
	queued atomic.Int32

	// owned by WriteFrame
	cur     dtmfDigit
	playing bool
	ts      uint32 // the event's RTP timestamp: the stream clock at its start
	elapsed uint32 // timestamp units of the event sent so far
	total   uint32 // the event's duration in timestamp units
	ends    int    // end packets sent
	gap     int    // audio frames still to send before the next digit
	first   bool
	payload []byte

	sent atomic.Uint64 // digits whose end was sent
}

func (s *dtmfSender) enqueue(d dtmfDigit) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) >= maxQueuedDigits {
		return false
	}
	s.queue = append(s.queue, d)
	s.queued.Store(int32(len(s.queue)))
	return true
}

func (s *dtmfSender) dequeue() (dtmfDigit, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return dtmfDigit{}, false
	}
	d := s.queue[0]
	s.queue = append(s.queue[:0], s.queue[1:]...)
	s.queued.Store(int32(len(s.queue)))
	return d, true
}

// idle reports, on WriteFrame's goroutine, that this frame is audio for
// certain: no digit playing, no gap to keep, none waiting.
func (s *dtmfSender) idle() bool { return !s.playing && s.gap == 0 && s.queued.Load() == 0 }

// next fills the event payload for the frame of frameTS timestamp units
// that the stream is about to send, whose timestamp would be streamTS. It
// returns the payload, the RTP timestamp to send it with and the marker
// bit, or ok false when this frame is audio.
func (s *dtmfSender) next(streamTS, frameTS uint32) (payload []byte, ts uint32, marker, ok bool) {
	if !s.playing {
		if s.gap > 0 {
			s.gap--
			return nil, 0, false, false
		}
		d, ok := s.dequeue()
		if !ok {
			return nil, 0, false, false
		}
		s.cur, s.playing, s.first, s.ends = d, true, true, 0
		s.ts, s.elapsed = streamTS, 0
		s.total = uint32(d.durationMS) * eventClockRate / 1000
	}
	ev := telephoneEvent{Event: uint8(wire.DTMFEvent(s.cur.digit)), Volume: eventVolume}
	if s.ends == 0 {
		s.elapsed += frameTS
		if s.elapsed >= s.total {
			s.elapsed = s.total
		}
	}
	ev.Duration = uint16(s.elapsed)
	if s.elapsed >= s.total {
		ev.End = true
		s.ends++
		if s.ends == 1 {
			s.sent.Add(1)
		}
	}
	marker = s.first
	s.first = false
	s.payload = ev.appendTo(s.payload[:0])
	if s.ends >= eventEndPackets {
		s.playing, s.gap = false, eventGapFrames
	}
	return s.payload, s.ts, marker, true
}

// legDTMF is a leg's DTMF state both ways.
type legDTMF struct {
	rx dtmfReceiver // owned by readLoop
	tx dtmfSender
	// onDigit receives each digit the phone pressed, on readLoop; it must
	// not block. Guarded by leg.mu (onDTMF).
	onDigit func(dtmfDigit)

	received, dropped, malformed atomic.Uint64
}

// onDTMF sets the function that gets each digit the phone pressed.
func (l *leg) onDTMF(fn func(dtmfDigit)) {
	l.mu.Lock()
	l.dtmf.onDigit = fn
	l.mu.Unlock()
}

// dtmfReceived is readLoop's hook for a packet of the phone's
// telephone-event payload type.
func (l *leg) dtmfReceived(pkt *rtp.Packet) {
	d := &l.dtmf
	digits, err := d.rx.packet(&pkt.Header, pkt.Payload)
	if err != nil {
		d.malformed.Add(1)
		return
	}
	if len(digits) == 0 {
		return
	}
	l.mu.Lock()
	fn := d.onDigit
	l.mu.Unlock()
	for _, dg := range digits {
		d.received.Add(1)
		if fn != nil {
			fn(dg)
		} else {
			d.dropped.Add(1)
		}
	}
}

// queueDTMF asks the leg to play digits to the phone. It fails when the
// phone did not offer telephone-event (RFC 4733 needs it negotiated) or
// too many digits are waiting.
func (l *leg) queueDTMF(digits string, durationMS int) error {
	l.mu.Lock()
	pt := l.dtmfPT
	l.mu.Unlock()
	if pt < 0 {
		// Not counted: the bridge sends these by SIP INFO instead.
		return fmt.Errorf("%w: the SIP phone did not offer telephone-event (RFC 4733)", ErrNoTelephoneEvent)
	}
	if durationMS == 0 {
		durationMS = wire.DefaultDTMFDurationMS
	}
	for i := 0; i < len(digits); i++ {
		if wire.DTMFEvent(digits[i]) < 0 {
			l.dtmf.dropped.Add(1)
			continue
		}
		if !l.dtmf.tx.enqueue(dtmfDigit{digit: digits[i], durationMS: durationMS}) {
			l.dtmf.dropped.Add(uint64(len(digits) - i))
			return fmt.Errorf("gateway: %d DTMF digits already waiting for the SIP phone; %d dropped", maxQueuedDigits, len(digits)-i)
		}
	}
	return nil
}

// ErrNoTelephoneEvent means DTMF cannot reach a SIP phone that did not
// negotiate RFC 4733 telephone-event.
var ErrNoTelephoneEvent = errors.New("gateway: no telephone-event negotiated")

// writeEvent is WriteFrame's hook: when a digit is being played it sends
// the frame's RFC 4733 packet instead of the audio frame of samples
// samples, and reports true. It keeps the stream's clock and sequence
// running, so the audio that follows continues the same stream.
func (l *leg) writeEvent(remote netip.AddrPort, samples, clockRate, sampleRate int) bool {
	if l.dtmf.tx.idle() {
		return false
	}
	l.mu.Lock()
	pt := l.dtmfPT
	l.mu.Unlock()
	if pt < 0 {
		return false
	}
	frameTS := uint32(samples) * uint32(clockRate) / uint32(sampleRate)
	payload, ts, marker, ok := l.dtmf.tx.next(l.pkt.Timestamp, frameTS)
	if !ok {
		return false
	}
	h := l.pkt.Header
	h.PayloadType, h.Timestamp, h.Marker = uint8(pt), ts, marker
	ev := rtp.Packet{Header: h, Payload: payload}
	n, err := ev.MarshalTo(l.out)
	l.pkt.SequenceNumber++
	l.pkt.Timestamp += frameTS
	if err != nil {
		return true
	}
	wire, err := l.protect(l.out[:n]) // SRTP (srtp.go)
	if err != nil {
		return true
	}
	if _, err := l.conn.WriteToUDPAddrPort(wire, remote); err == nil {
		l.stats.Sent.Add(1)
	}
	return true
}

// bridge side

// dtmfWork runs a bridge's DTMF sends one after another, in the order
// they were asked for, on at most one goroutine at a time, which exists
// only while there is work (no goroutine per idle call).
type dtmfWork struct {
	mu   sync.Mutex
	q    []func()
	busy bool
}

// do queues fn; false when maxQueuedDigits are already waiting.
func (w *dtmfWork) do(wg *sync.WaitGroup, fn func()) bool {
	w.mu.Lock()
	if len(w.q) >= maxQueuedDigits {
		w.mu.Unlock()
		return false
	}
	w.q = append(w.q, fn)
	start := !w.busy
	w.busy = true
	w.mu.Unlock()
	if start {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				w.mu.Lock()
				if len(w.q) == 0 {
					w.busy = false
					w.mu.Unlock()
					return
				}
				fn := w.q[0]
				w.q = append(w.q[:0], w.q[1:]...)
				w.mu.Unlock()
				fn()
			}
		}()
	}
	return true
}

// dtmfToP2P sends a digit the phone pressed (RFC 4733 or SIP INFO) to the
// far P2P party, after the ones before it. It does not block: it runs on
// the leg's readLoop.
func (b *bridge) dtmfToP2P(d dtmfDigit) {
	if !b.dtmfWork.do(&b.g.wg, func() { b.sendToP2P(d) }) {
		b.leg.dtmf.dropped.Add(1)
	}
}

func (b *bridge) sendToP2P(d dtmfDigit) {
	b.mu.Lock()
	id := b.p2pID
	b.mu.Unlock()
	ep := b.dev.endpoint()
	if ep == nil || id == "" {
		b.leg.dtmf.dropped.Add(1)
		return
	}
	// The wire bounds a digit's length (40-5000 ms); a phone's very short
	// or very long press is carried at the nearest bound.
	dur := min(max(d.durationMS, wire.MinDTMFDurationMS), wire.MaxDTMFDurationMS)
	ctx, cancel := context.WithTimeout(b.g.ctx, 5*time.Second)
	err := ep.SendDTMF(ctx, id, endpoint.DTMFRequest{Digits: string(d.digit), DurationMS: dur})
	cancel()
	if err != nil {
		b.leg.dtmf.dropped.Add(1)
		b.g.log.Info("DTMF from the SIP phone not delivered to the P2P party", "p2p_call_id", id, "err", err)
	}
}

// dtmfFromP2P plays a digit the far P2P party pressed to the phone
// (bridge.post's hook for call.dtmf events): as RFC 4733 events when the
// phone negotiated telephone-event, else as SIP INFO application/dtmf-relay
// in the dialog.
func (b *bridge) dtmfFromP2P(ev endpoint.Event) {
	if len(ev.Digit) != 1 {
		return // the endpoint publishes one digit per event
	}
	err := b.leg.queueDTMF(ev.Digit, ev.DurationMS) // counts what it drops
	if errors.Is(err, ErrNoTelephoneEvent) {
		d := dtmfDigit{digit: ev.Digit[0], durationMS: ev.DurationMS}
		if d.durationMS == 0 {
			d.durationMS = wire.DefaultDTMFDurationMS
		}
		if b.dtmfWork.do(&b.g.wg, func() { b.sendInfo(d) }) {
			return
		}
		b.leg.dtmf.dropped.Add(1)
		err = fmt.Errorf("gateway: %d DTMF digits already waiting for the SIP phone", maxQueuedDigits)
	}
	if err != nil {
		b.g.log.Info("DTMF from the P2P party not played to the SIP phone", "p2p_call_id", ev.CallID, "err", err)
	}
}

// Content types of DTMF in SIP INFO. application/dtmf-relay (Signal= and
// Duration= lines) is the de-facto format phones and PBXs use;
// application/dtmf carries the bare digit.
const (
	contentDTMFRelay = "application/dtmf-relay"
	contentDTMF      = "application/dtmf"
	// maxInfoBody bounds an INFO body the gateway parses.
	maxInfoBody = 1024
)

// sendInfo sends one digit to the phone as SIP INFO in the call's dialog
// (for a phone without telephone-event); it waits for the answer, so the
// digits arrive in order.
func (b *bridge) sendInfo(d dtmfDigit) {
	b.reinv.mu.Lock()
	sess, target := b.reinv.session()
	b.reinv.mu.Unlock()
	if sess == nil {
		b.leg.dtmf.dropped.Add(1)
		b.g.log.Info("DTMF for the SIP phone dropped: its dialog is not confirmed", "sip_call_id", b.sipCallID)
		return
	}
	req := sip.NewRequest(sip.INFO, target)
	req.AppendHeader(sip.NewHeader("Content-Type", contentDTMFRelay))
	req.SetBody(fmt.Appendf(nil, "Signal=%c\r\nDuration=%d\r\n", d.digit, d.durationMS))
	ctx, cancel := context.WithTimeout(b.g.ctx, 5*time.Second)
	defer cancel()
	res, err := sess.Do(ctx, req)
	switch {
	case err != nil:
		err = fmt.Errorf("gateway: INFO: %w", err)
	case !res.IsSuccess():
		err = fmt.Errorf("gateway: INFO answered %d %s", res.StatusCode, res.Reason)
	}
	if err != nil {
		b.leg.dtmf.dropped.Add(1)
		b.g.log.Info("DTMF for the SIP phone not delivered by INFO", "sip_call_id", b.sipCallID, "err", err)
		return
	}
	b.leg.dtmf.tx.sent.Add(1)
}

// parseInfoDTMF reads the digit of a SIP INFO body: application/dtmf-relay
// ("Signal=5", optional "Duration=160" in ms, one per line, keys in any
// case) or application/dtmf (the bare digit). Lower-case a-d are taken as
// A-D. The error says what is wrong.
func parseInfoDTMF(contentType string, body []byte) (dtmfDigit, error) {
	if len(body) > maxInfoBody {
		return dtmfDigit{}, fmt.Errorf("body of %d bytes, limit %d", len(body), maxInfoBody)
	}
	ct, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(contentType)), ";")
	ct = strings.TrimSpace(ct)
	d := dtmfDigit{durationMS: wire.DefaultDTMFDurationMS}
	signal := ""
	switch ct {
	case contentDTMF:
		signal = strings.TrimSpace(string(body))
	case contentDTMFRelay:
		for _, line := range strings.Split(string(body), "\n") {
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				if strings.TrimSpace(line) == "" {
					continue
				}
				return dtmfDigit{}, fmt.Errorf("line %q is not key=value", trimForError(line))
			}
			k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
			switch k {
			case "signal":
				signal = v
			case "duration":
				n, err := strconv.Atoi(v)
				if err != nil || n <= 0 || n > 65535 {
					return dtmfDigit{}, fmt.Errorf("duration %q: want 1-65535 ms", trimForError(v))
				}
				d.durationMS = n
			}
		}
	default:
		return dtmfDigit{}, fmt.Errorf("%w: content type %q (want %s or %s)", errInfoType, trimForError(contentType), contentDTMFRelay, contentDTMF)
	}
	if len(signal) != 1 {
		return dtmfDigit{}, fmt.Errorf("signal %q: want one of 0-9 * # A-D", trimForError(signal))
	}
	c := signal[0]
	if c >= 'a' && c <= 'd' {
		c -= 'a' - 'A'
	}
	if wire.DTMFEvent(c) < 0 {
		return dtmfDigit{}, fmt.Errorf("signal %q is not a DTMF digit (want 0-9 * # A-D)", trimForError(signal))
	}
	d.digit = c
	return d, nil
}

// errInfoType is an INFO body of a type the gateway does not take (415).
var errInfoType = errors.New("unsupported INFO content")

func trimForError(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 32 {
		s = s[:32] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// onInfo takes SIP INFO inside a bridged call (RFC 6086): a DTMF digit
// (application/dtmf-relay or application/dtmf) for the far P2P party, as
// from a phone configured for "SIP INFO" DTMF instead of RFC 4733.
// Outside a bridged call: 481; another body: 415; a bad one: 400 naming
// the problem.
func (g *Gateway) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	g.mu.Lock()
	b := g.bridges[req.CallID().Value()]
	g.mu.Unlock()
	to := req.To()
	if b == nil || to == nil {
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	if _, tagged := to.Params.Get("tag"); !tagged {
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = h.Value()
	}
	d, err := parseInfoDTMF(ct, req.Body())
	if errors.Is(err, errInfoType) {
		respond(tx, req, sip.StatusUnsupportedMediaType, "Unsupported Media Type", sip.NewHeader("Accept", contentDTMFRelay+", "+contentDTMF))
		return
	}
	if err != nil {
		respond(tx, req, sip.StatusBadRequest, "Bad DTMF: "+err.Error())
		return
	}
	respond(tx, req, sip.StatusOK, "OK")
	b.leg.dtmf.received.Add(1)
	b.dtmfToP2P(d)
}
