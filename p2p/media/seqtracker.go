package media

// seqVerdict classifies a sequence number against what a source sent before.
type seqVerdict uint8

const (
	seqUnknown seqVerdict = iota
	// seqInOrder: higher than every sequence number so far (a gap before it
	// means loss, or reordering not yet resolved).
	seqInOrder
	// seqReordered: lower than the highest so far and not seen before.
	seqReordered
	// seqDuplicate: already received.
	seqDuplicate
	// seqJump: a very large jump, not yet confirmed by a following packet
	// (RFC 3550 A.3 "bad_seq"); not counted as received.
	seqJump
	// seqRestarted: the second packet of a confirmed jump; the statistics
	// restarted from it (RFC 3550 A.3, the sender restarted).
	seqRestarted
)

func (v seqVerdict) String() string {
	switch v {
	case seqInOrder:
		return "in-order"
	case seqReordered:
		return "reordered"
	case seqDuplicate:
		return "duplicate"
	case seqJump:
		return "jump"
	case seqRestarted:
		return "restarted"
	default:
		return "unknown"
	}
}

// RFC 3550 A.3 limits: a forward jump of up to maxDropout is a gap (loss);
// up to maxMisorder behind the highest is reordering; anything else is a
// jump that needs confirmation.
const (
	maxDropout  = 3000
	maxMisorder = 100
	// seqWindow is how far back duplicates are recognized exactly (one bit
	// per sequence number, like the SRTP replay list of RFC 3711 §3.3.2).
	seqWindow = 64
)

// seqTracker extends 16-bit RTP sequence numbers across wrap-around and keeps
// the counts behind the loss statistic of RFC 3550 §6.4.1 (A.3). It is a
// value with no allocation; the zero value is not ready, use newSeqTracker.
type seqTracker struct {
	base     int64  // extended sequence number of the first packet
	maxExt   int64  // highest extended sequence number received
	received uint64 // distinct packets received since base
	seen     uint64 // bit i: maxExt-i was received
	badSeq   int64  // A.3 bad_seq: expected next packet of an unconfirmed jump, -1 when none
	lostPrev uint64 // loss accumulated before the last restart
}

func newSeqTracker(seq uint16) seqTracker {
	t := seqTracker{lostPrev: 0}
	t.restart(seq)
	return t
}

func (t *seqTracker) restart(seq uint16) {
	t.lostPrev += t.runLost()
	// Start the extended space one cycle up so that a packet reordered
	// before the first one still has a non-negative extended number.
	t.base = 1<<16 + int64(seq)
	t.maxExt = t.base
	t.received = 1
	t.seen = 1
	t.badSeq = -1
}

// update records seq and classifies it.
func (t *seqTracker) update(seq uint16) seqVerdict {
	udelta := seq - uint16(t.maxExt)
	switch {
	case udelta == 0:
		return seqDuplicate
	case udelta < maxDropout:
		// In order, maybe with a gap; uint16 arithmetic handles wrap-around
		// and the extended number carries the cycle (A.3 "cycles").
		t.maxExt += int64(udelta)
		if udelta >= seqWindow {
			t.seen = 0
		} else {
			t.seen <<= udelta
		}
		t.seen |= 1
		t.received++
		t.badSeq = -1
		return seqInOrder
	case int(udelta) <= 1<<16-maxMisorder:
		// A very large jump. A.3: accept it only when the next packet
		// follows it, which means the sender restarted its numbering.
		if int64(seq) == t.badSeq {
			t.restart(seq)
			return seqRestarted
		}
		t.badSeq = int64(seq+1) & 0xffff
		return seqJump
	default:
		back := int64(1<<16 - int(udelta))
		if back < seqWindow {
			bit := uint64(1) << back
			if t.seen&bit != 0 {
				return seqDuplicate
			}
			t.seen |= bit
		}
		// Older than the window: cannot tell a duplicate apart; count it
		// (lost() is clamped at zero for that reason, as A.3 does).
		t.received++
		return seqReordered
	}
}

// runLost is the loss since the last restart: expected minus received,
// clamped at zero.
func (t *seqTracker) runLost() uint64 {
	if t.received == 0 {
		return 0
	}
	expected := uint64(t.maxExt-t.base) + 1
	if expected <= t.received {
		return 0
	}
	return expected - t.received
}

// lost is the cumulative loss of this source.
func (t *seqTracker) lost() uint64 { return t.lostPrev + t.runLost() }
