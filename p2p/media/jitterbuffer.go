package media

import (
	"time"
)

// Playout constants.
const (
	// maxConcealFrames is how many consecutive missing frames are bridged
	// by repeating the last received frame at decreasing gain (3/4, 2/4,
	// 1/4) before the playout falls back to silence.
	maxConcealFrames = 3
	// recentSources is how many replaced SSRCs are remembered.
	recentSources = 4
	// minJitterSlots is the smallest ring.
	minJitterSlots = 16
)

// frameKind says what the playout produces for one tick.
type frameKind uint8

const (
	frameUnknown frameKind = iota
	// frameNone: playout has not started; nothing is written to the sink.
	frameNone
	// frameReal: a received frame.
	frameReal
	// frameConcealed: a repeat of the last received frame at reduced gain.
	frameConcealed
	// frameSilence: a missing frame after concealment ran out.
	frameSilence
)

func (k frameKind) String() string {
	switch k {
	case frameNone:
		return "none"
	case frameReal:
		return "real"
	case frameConcealed:
		return "concealed"
	case frameSilence:
		return "silence"
	default:
		return "unknown"
	}
}

// pushResult says what the jitter buffer did with a packet.
type pushResult uint8

const (
	pushUnknown pushResult = iota
	// pushAccepted: buffered for playout.
	pushAccepted
	// pushDuplicate: already received (dropped).
	pushDuplicate
	// pushLate: its playout time has passed (dropped).
	pushLate
	// pushStaleSource: from a source that was replaced (dropped).
	pushStaleSource
)

func (r pushResult) String() string {
	switch r {
	case pushAccepted:
		return "accepted"
	case pushDuplicate:
		return "duplicate"
	case pushLate:
		return "late"
	case pushStaleSource:
		return "stale-source"
	default:
		return "unknown"
	}
}

// frame is one tick of playout.
type frame struct {
	kind frameKind
	// payload is the received payload for frameReal. It aliases the ring
	// and is valid until the next push.
	payload []byte
	// run counts the consecutive missing frames up to this one (1 for the
	// first missing frame) for frameConcealed and frameSilence.
	run int
}

// jitterConfig parameterizes a jitterBuffer.
type jitterConfig struct {
	ptime     time.Duration
	delay     time.Duration
	step      uint32 // RTP timestamp units per frame
	clockRate int    // RTP clock rate, Hz
	// payloadCap preallocates each ring entry's payload buffer.
	payloadCap int
	// stale is Config.StaleSourceTimeout (defaults applied).
	stale time.Duration
}

// jitterSlots sizes the ring: room for twice the playout delay plus a
// margin for bursts, as a power of two so that slot&mask indexes it.
func jitterSlots(ptime, delay time.Duration) int {
	need := 2*int((delay+ptime-1)/ptime) + 8
	n := minJitterSlots
	for n < need {
		n <<= 1
	}
	return n
}

type jitterEntry struct {
	valid   bool
	slot    int64
	payload []byte
}

// jitterSource is the playout state of one SSRC.
type jitterSource struct {
	ssrc uint32
	// anchorTS is the extended RTP timestamp mapped to anchorSlot; every
	// other timestamp maps to a slot by its distance from it.
	anchorTS   int64
	anchorSlot int64
	seq        seqTracker
	// lastArrival is when the latest packet of this source arrived.
	lastArrival time.Time
	// RFC 3550 A.8 interarrival jitter, in timestamp units scaled by 16.
	arrivalBase time.Time
	transit     int64
	hasTransit  bool
	jitterQ4    int64
}

// jitterStats are the jitter buffer's counters.
type jitterStats struct {
	lost, late, duplicates, reordered uint64
	played, concealed                 uint64
	sourceSwitches, staleSource       uint64
	resyncs                           uint64
	longestGapFrames                  int
	jitter                            time.Duration
	remoteSSRC                        uint32
}

// jitterBuffer is a fixed-delay playout buffer for one call's incoming
// audio. It is deterministic: it runs no goroutines and reads no clock;
// callers pass arrival and playout times. One goroutine owns it.
//
// Timing comes from RTP timestamps, not sequence numbers: each frame of
// playout is a "slot" of one ptime, and a packet's slot is its timestamp's
// distance from the source's anchor packet divided by the timestamp step.
// That keeps playout aligned when a sender pauses (RFC 3550 §5.1: the
// timestamp keeps running while the sequence number does not). Sequence
// numbers drive the loss, reorder and duplicate statistics (seqTracker).
//
// The first packet of a source is played JitterDelay after it arrived; every
// later slot one ptime after the previous one. The ring holds a window of
// slots, so reordering within it is undone; a packet whose slot was already
// played is late and dropped.
type jitterBuffer struct {
	cfg  jitterConfig
	ring []jitterEntry
	mask int64

	hasSource bool
	src       jitterSource
	// recent holds replaced SSRCs (RFC 3550 §8.2: never mix sources).
	recent  [recentSources]uint32
	nRecent int

	cursor    int64 // next slot to play
	maxSlot   int64 // highest slot stored since the anchor
	playing   bool
	startAt   time.Time // playout time of the anchor slot
	lastPopAt time.Time
	lateRun   int // consecutive late packets

	concealRun int
	hadReal    bool

	st       jitterStats
	lostPrev uint64 // loss of replaced sources
	// switchedBack says the latest source switch went back to a replaced
	// source (Config.OnSourceSwitch).
	switchedBack bool
}

func newJitterBuffer(cfg jitterConfig) *jitterBuffer {
	if cfg.stale <= 0 {
		cfg.stale = DefaultStaleSourceTimeout
	}
	n := jitterSlots(cfg.ptime, cfg.delay)
	jb := &jitterBuffer{cfg: cfg, ring: make([]jitterEntry, n), mask: int64(n - 1)}
	// One backing array for every entry's payload: one allocation, and the
	// steady path never grows it for payloads up to payloadCap.
	backing := make([]byte, n*cfg.payloadCap)
	for i := range jb.ring {
		jb.ring[i].payload = backing[i*cfg.payloadCap : i*cfg.payloadCap : (i+1)*cfg.payloadCap]
	}
	return jb
}

// push offers one received, authenticated packet of the right payload type.
func (jb *jitterBuffer) push(ssrc uint32, seq uint16, ts uint32, payload []byte, at time.Time) pushResult {
	if !jb.hasSource {
		jb.hasSource = true
		jb.startSource(ssrc, seq, ts, at)
		return jb.store(jb.src.anchorSlot, payload)
	}
	if ssrc != jb.src.ssrc {
		if jb.isRecent(ssrc) && at.Sub(jb.src.lastArrival) < jb.cfg.stale {
			jb.st.staleSource++
			return pushStaleSource
		}
		// RFC 3550 §8.2: a new source (handoff: A's authenticated stream
		// replaces B's), or a replaced one back after its replacement
		// went silent. Playout switches to it from this packet on.
		jb.st.sourceSwitches++
		jb.switchedBack = jb.isRecent(ssrc)
		jb.lostPrev += jb.src.seq.lost()
		jb.remember(jb.src.ssrc)
		jb.startSource(ssrc, seq, ts, at)
		return jb.store(jb.src.anchorSlot, payload)
	}

	switch jb.src.seq.update(seq) {
	case seqDuplicate:
		jb.st.duplicates++
		return pushDuplicate
	case seqReordered:
		jb.st.reordered++
	default:
	}
	jb.src.lastArrival = at
	ext := jb.extend(ts)
	jb.updateJitter(ext, at)
	slot := jb.slotOf(ext)
	n := int64(len(jb.ring))
	d := slot - jb.cursor
	switch {
	case d >= n:
		// Too far ahead for the ring: the timestamps jumped (or playout
		// fell behind the sender for long). Re-anchor on this packet.
		slot = jb.resync(ts, at)
	case d < 0 && !jb.playing && jb.maxSlot-slot < n:
		// Reordered ahead of the first packets, before anything was
		// played: it simply starts the playout one slot earlier.
		jb.cursor = slot
	case d < 0:
		jb.lateRun++
		if -d > n || jb.lateRun > int(n) {
			// Far behind, or late for longer than the whole window: the
			// sender's timestamps moved back; follow them.
			slot = jb.resync(ts, at)
			break
		}
		jb.st.late++
		return pushLate
	}
	jb.lateRun = 0
	return jb.store(slot, payload)
}

// pop plays one tick at time at. Callers call it once per ptime with
// times one ptime apart.
func (jb *jitterBuffer) pop(at time.Time) frame {
	if !jb.hasSource {
		return frame{kind: frameNone}
	}
	if !jb.playing {
		if at.Before(jb.startAt) {
			return frame{kind: frameNone}
		}
		jb.playing = true
		// Playout started later than planned (the caller started ticking
		// long after packets arrived): skip what is already stale.
		if behind := at.Sub(jb.startAt); behind >= jb.cfg.ptime {
			jb.cursor += int64(behind / jb.cfg.ptime)
		}
	}
	jb.lastPopAt = at
	slot := jb.cursor
	jb.cursor++
	e := &jb.ring[slot&jb.mask]
	if e.valid && e.slot == slot {
		e.valid = false
		jb.st.played++
		if jb.hadReal && jb.concealRun > jb.st.longestGapFrames {
			jb.st.longestGapFrames = jb.concealRun
		}
		jb.concealRun = 0
		jb.hadReal = true
		return frame{kind: frameReal, payload: e.payload}
	}
	jb.st.concealed++
	jb.concealRun++
	if jb.hadReal && jb.concealRun <= maxConcealFrames {
		return frame{kind: frameConcealed, run: jb.concealRun}
	}
	return frame{kind: frameSilence, run: jb.concealRun}
}

// skip advances playout by n ticks without producing frames; the caller
// uses it when it could not run for a long time (process stalled).
func (jb *jitterBuffer) skip(n int64) {
	if jb.playing && n > 0 {
		jb.cursor += n
	}
}

func (jb *jitterBuffer) stats() jitterStats {
	st := jb.st
	st.lost = jb.lostPrev
	if jb.hasSource {
		st.lost += jb.src.seq.lost()
		st.remoteSSRC = jb.src.ssrc
		// J in timestamp units, converted without overflow even for the
		// absurd values a hostile plain-RTP sender can cause.
		j, clock := jb.src.jitterQ4/16, int64(jb.cfg.clockRate)
		st.jitter = time.Duration(j/clock)*time.Second + time.Duration(j%clock)*time.Second/time.Duration(clock)
	}
	return st
}

// startSource makes ssrc the played source, anchored on this packet.
func (jb *jitterBuffer) startSource(ssrc uint32, seq uint16, ts uint32, at time.Time) {
	jb.forget(ssrc)
	jb.src = jitterSource{
		ssrc:        ssrc,
		seq:         newSeqTracker(seq),
		lastArrival: at,
		arrivalBase: at,
	}
	jb.anchor(ts, at, true)
}

// resync re-anchors the current source on a packet whose timestamp is
// discontinuous with the previous ones, and returns its slot.
func (jb *jitterBuffer) resync(ts uint32, at time.Time) int64 {
	if jb.playing {
		jb.st.resyncs++
	}
	jb.anchor(ts, at, false)
	jb.src.hasTransit = false
	jb.src.arrivalBase = at
	return jb.src.anchorSlot
}

// anchor maps timestamp ts, arriving at at, to the slot played JitterDelay
// later; switched says ts is a new source's first packet (not a resync). Before playout started that is simply the first slot. During
// playout the slot timeline continues (one frame per tick, never two): the
// anchor is the first slot played at or after at+delay, and the slots
// before it keep whatever was buffered for them, so a handoff from B's
// stream to A's plays B's buffered frames, then A's, without mixing.
func (jb *jitterBuffer) anchor(ts uint32, at time.Time, switched bool) {
	var slot int64
	if !jb.playing {
		for i := range jb.ring {
			jb.ring[i].valid = false
		}
		jb.cursor = 0
		jb.startAt = at.Add(jb.cfg.delay)
	} else {
		// The slot at cursor plays at the next tick, lastPopAt+ptime.
		wait := at.Add(jb.cfg.delay).Sub(jb.lastPopAt.Add(jb.cfg.ptime))
		ahead := int64(0)
		if wait > 0 {
			ahead = int64((wait + jb.cfg.ptime - 1) / jb.cfg.ptime)
		}
		slot = jb.cursor + ahead
		// Two unrelated packet clocks (the old device's and the new one's
		// in a handoff, or a session restarted on a new address) are up to
		// one ptime out of phase: when that would leave exactly one empty
		// slot after the last frame still buffered, the new stream starts
		// in that slot instead, so the listener hears no 20 ms hole. It
		// costs the new stream at most one ptime of its jitter margin.
		//
		// A new source (switched) gets that slot also when more would be
		// left empty, or when the old source's frames have just run out
		// and the gap after them is still being concealed: its first
		// packet came a frame late (a device descheduled under load,
		// docs/benchmarks.md §23), and the listener hears one 20 ms hole
		// less. Never more than one ptime of its margin; a source that
		// starts after a silence gets its whole delay.
		next := max(jb.maxSlot+1, jb.cursor)
		switch {
		case slot == jb.maxSlot+2 && jb.maxSlot+1 >= jb.cursor:
			slot = jb.maxSlot + 1
		case switched && slot > next && jb.maxSlot+maxConcealFrames >= jb.cursor:
			slot = max(next, slot-1)
		}
		for i := range jb.ring {
			if e := &jb.ring[i]; e.valid && e.slot >= slot {
				e.valid = false
			}
		}
	}
	jb.src.anchorTS = int64(ts)
	jb.src.anchorSlot = slot
	jb.maxSlot = slot
	jb.lateRun = 0
}

// extend turns a 32-bit RTP timestamp into the source's extended
// timestamp, taking the one nearest to the playout position, which handles
// timestamp wrap-around (RFC 3550 §5.1: the timestamp wraps modulo 2^32).
func (jb *jitterBuffer) extend(ts uint32) int64 {
	ref := jb.src.anchorTS + (jb.cursor-jb.src.anchorSlot)*int64(jb.cfg.step)
	return ref + int64(int32(ts-uint32(ref)))
}

func (jb *jitterBuffer) slotOf(ext int64) int64 {
	return jb.src.anchorSlot + floorDiv(ext-jb.src.anchorTS, int64(jb.cfg.step))
}

func (jb *jitterBuffer) store(slot int64, payload []byte) pushResult {
	e := &jb.ring[slot&jb.mask]
	if e.valid && e.slot == slot {
		// Another packet for the same media time: a duplicate with a new
		// sequence number. Keep the first.
		jb.st.duplicates++
		return pushDuplicate
	}
	e.valid = true
	e.slot = slot
	e.payload = append(e.payload[:0], payload...)
	if slot > jb.maxSlot {
		jb.maxSlot = slot
	}
	return pushAccepted
}

// updateJitter implements the interarrival jitter estimate of RFC 3550
// §6.4.1 (code in A.8): J += (|D| - J)/16, kept scaled by 16.
func (jb *jitterBuffer) updateJitter(ext int64, at time.Time) {
	src := &jb.src
	d := at.Sub(src.arrivalBase)
	clock := int64(jb.cfg.clockRate)
	arrival := int64(d/time.Second)*clock + int64(d%time.Second)*clock/int64(time.Second)
	transit := arrival - (ext - src.anchorTS)
	if src.hasTransit {
		delta := transit - src.transit
		if delta < 0 {
			delta = -delta
		}
		src.jitterQ4 += delta - ((src.jitterQ4 + 8) >> 4)
	}
	src.transit = transit
	src.hasTransit = true
}

func (jb *jitterBuffer) isRecent(ssrc uint32) bool {
	for i := range jb.nRecent {
		if jb.recent[i] == ssrc {
			return true
		}
	}
	return false
}

// remember adds a replaced SSRC, dropping the oldest when full.
func (jb *jitterBuffer) remember(ssrc uint32) {
	if jb.isRecent(ssrc) {
		return
	}
	if jb.nRecent < recentSources {
		jb.recent[jb.nRecent] = ssrc
		jb.nRecent++
		return
	}
	copy(jb.recent[:], jb.recent[1:])
	jb.recent[recentSources-1] = ssrc
}

// forget removes ssrc from the replaced set (it becomes current again).
func (jb *jitterBuffer) forget(ssrc uint32) {
	for i := 0; i < jb.nRecent; i++ {
		if jb.recent[i] == ssrc {
			copy(jb.recent[i:], jb.recent[i+1:jb.nRecent])
			jb.nRecent--
			return
		}
	}
}

// conceal writes the concealment of the run-th consecutive missing frame
// into dst: last at gain (maxConcealFrames+1-run)/(maxConcealFrames+1),
// i.e. 3/4, 2/4, 1/4, then silence. With no last frame it writes silence.
func conceal(dst, last []int16, run int) {
	if last == nil || run < 1 || run > maxConcealFrames {
		clear(dst)
		return
	}
	num := int32(maxConcealFrames + 1 - run)
	const den = maxConcealFrames + 1
	n := copy(dst, last)
	for i := range dst[:n] {
		dst[i] = int16(int32(dst[i]) * num / den)
	}
	clear(dst[n:])
}

// floorDiv divides rounding toward negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
