package media

import (
	"testing"
	"time"
)

const (
	jbPtime = 20 * time.Millisecond
	jbDelay = 40 * time.Millisecond
	jbStep  = 160
)

func newTestJitterBuffer() *jitterBuffer { return newTestJitterBufferStale(0) }

// newTestJitterBufferStale has a stale-source timeout of stale (0: the
// default).
func newTestJitterBufferStale(stale time.Duration) *jitterBuffer {
	return newJitterBuffer(jitterConfig{ptime: jbPtime, delay: jbDelay, step: jbStep, clockRate: 8000, payloadCap: 8, stale: stale})
}

// jbOp is one call on the jitter buffer: a push or a pop at a time given
// in milliseconds from the test's origin.
type jbOp struct {
	pop bool
	at  int // ms

	// push
	ssrc    uint32
	seq     uint16
	ts      uint32
	payload byte
	want    pushResult

	// pop
	kind    frameKind
	wantPay byte // payload of a real frame
	run     int  // run of a concealed/silent frame, 0 = do not check
}

func push(at int, ssrc uint32, seq uint16, ts uint32, payload byte, want pushResult) jbOp {
	return jbOp{at: at, ssrc: ssrc, seq: seq, ts: ts, payload: payload, want: want}
}

func popReal(at int, payload byte) jbOp {
	return jbOp{pop: true, at: at, kind: frameReal, wantPay: payload}
}

func popKind(at int, kind frameKind, run int) jbOp {
	return jbOp{pop: true, at: at, kind: kind, run: run}
}

// stream pushes n in-order packets of one source, one every 20 ms from
// at0, with sequence numbers from seq0 and timestamps from ts0, payloads
// from pay0.
func stream(at0 int, ssrc uint32, seq0 uint16, ts0 uint32, pay0 byte, n int) []jbOp {
	ops := make([]jbOp, 0, n)
	for i := range n {
		ops = append(ops, push(at0+20*i, ssrc, seq0+uint16(i), ts0+uint32(i)*jbStep, pay0+byte(i), pushAccepted))
	}
	return ops
}

func ops(parts ...[]jbOp) []jbOp {
	var out []jbOp
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func one(op jbOp) []jbOp { return []jbOp{op} }

func TestJitterBuffer(t *testing.T) {
	t.Parallel()
	const a, b = 0xA, 0xB
	tests := []struct {
		name  string
		stale time.Duration // Config.StaleSourceTimeout, 0: the default
		ops   []jbOp
		want  jitterStats // checked fields: see compare below
	}{
		{
			name: "nothing before the first packet",
			ops: ops(
				one(popKind(0, frameNone, 0)),
				one(popKind(500, frameNone, 0)),
				one(push(1000, a, 1, 100, 1, pushAccepted)),
				one(popKind(1020, frameNone, 0)), // within the playout delay
				one(popReal(1040, 1)),
			),
			want: jitterStats{played: 1},
		},
		{
			name: "in order",
			ops: ops(
				stream(0, a, 10, 1000, 1, 5),
				[]jbOp{popReal(40, 1), popReal(60, 2), popReal(80, 3), popReal(100, 4), popReal(120, 5)},
			),
			want: jitterStats{played: 5},
		},
		{
			name: "reordered within the window",
			ops: []jbOp{
				push(0, a, 10, 1000, 1, pushAccepted),
				push(20, a, 12, 1000+2*jbStep, 3, pushAccepted),
				push(25, a, 11, 1000+jbStep, 2, pushAccepted),
				popReal(40, 1), popReal(60, 2), popReal(80, 3),
			},
			want: jitterStats{played: 3, reordered: 1},
		},
		{
			name: "reordered before the first packet, before playout",
			ops: []jbOp{
				push(0, a, 11, 1000+jbStep, 2, pushAccepted),
				push(5, a, 10, 1000, 1, pushAccepted),
				popReal(40, 1), popReal(60, 2),
			},
			want: jitterStats{played: 2, reordered: 1},
		},
		{
			name: "duplicate",
			ops: []jbOp{
				push(0, a, 10, 1000, 1, pushAccepted),
				push(5, a, 10, 1000, 1, pushDuplicate),
				push(20, a, 11, 1000+jbStep, 2, pushAccepted),
				push(21, a, 11, 1000+jbStep, 2, pushDuplicate),
				popReal(40, 1), popReal(60, 2),
				push(70, a, 10, 1000, 1, pushDuplicate), // after it was played
			},
			want: jitterStats{played: 2, duplicates: 3},
		},
		{
			name: "same media time under another sequence number",
			ops: []jbOp{
				push(0, a, 10, 1000, 1, pushAccepted),
				push(5, a, 11, 1000, 2, pushDuplicate),
				popReal(40, 1),
			},
			want: jitterStats{played: 1, duplicates: 1},
		},
		{
			name: "late packet is dropped",
			ops: []jbOp{
				push(0, a, 10, 1000, 1, pushAccepted),
				push(40, a, 12, 1000+2*jbStep, 3, pushAccepted),
				popReal(40, 1),
				popKind(60, frameConcealed, 1), // 11 is missing at its playout time
				push(70, a, 11, 1000+jbStep, 2, pushLate),
				popReal(80, 3),
			},
			want: jitterStats{played: 2, concealed: 1, late: 1, reordered: 1, longestGapFrames: 1},
		},
		{
			name: "loss then concealment then silence",
			ops: ops(
				one(push(0, a, 10, 1000, 1, pushAccepted)),
				one(push(120, a, 16, 1000+6*jbStep, 7, pushAccepted)),
				[]jbOp{
					popReal(40, 1),
					popKind(60, frameConcealed, 1),
					popKind(80, frameConcealed, 2),
					popKind(100, frameConcealed, 3),
					popKind(120, frameSilence, 4),
					popKind(140, frameSilence, 5),
					popReal(160, 7),
				},
			),
			want: jitterStats{played: 2, concealed: 5, lost: 5, longestGapFrames: 5},
		},
		{
			name: "sequence number wrap",
			ops: ops(
				stream(0, a, 65534, 1000, 1, 4),
				[]jbOp{popReal(40, 1), popReal(60, 2), popReal(80, 3), popReal(100, 4)},
			),
			want: jitterStats{played: 4},
		},
		{
			name: "sequence number wrap with loss across it",
			ops: []jbOp{
				push(0, a, 65535, 1000, 1, pushAccepted),
				push(40, a, 1, 1000+2*jbStep, 3, pushAccepted),
				popReal(40, 1), popKind(60, frameConcealed, 1), popReal(80, 3),
			},
			want: jitterStats{played: 2, concealed: 1, lost: 1, longestGapFrames: 1},
		},
		{
			name: "timestamp wrap",
			ops: ops(
				stream(0, a, 7, 1<<32-2*jbStep, 1, 4),
				[]jbOp{popReal(40, 1), popReal(60, 2), popReal(80, 3), popReal(100, 4)},
			),
			want: jitterStats{played: 4},
		},
		{
			name: "sender pause: timestamp jumps, sequence does not",
			ops: ops(
				stream(0, a, 10, 1000, 1, 2),
				// Paused for 5 frames: next seq, timestamp 7 frames on.
				one(push(140, a, 12, 1000+7*jbStep, 3, pushAccepted)),
				[]jbOp{
					popReal(40, 1), popReal(60, 2),
					popKind(80, frameConcealed, 1), popKind(100, frameConcealed, 2),
					popKind(120, frameConcealed, 3), popKind(140, frameSilence, 4),
					popKind(160, frameSilence, 5),
					popReal(180, 3),
				},
			),
			want: jitterStats{played: 3, concealed: 5, longestGapFrames: 5},
		},
		{
			name: "source switch plays the old source's buffered frames then the new one",
			ops: []jbOp{
				push(0, a, 10, 1000, 1, pushAccepted),
				push(20, a, 11, 1000+jbStep, 2, pushAccepted),
				popReal(40, 1),
				push(40, a, 12, 1000+2*jbStep, 3, pushAccepted),
				// B's first packet at 45 plays at the first tick >= 85: 100.
				push(45, b, 500, 77777, 21, pushAccepted),
				popReal(60, 2),
				push(60, a, 13, 1000+3*jbStep, 4, pushStaleSource), // A's straggler
				push(65, b, 501, 77777+jbStep, 22, pushAccepted),
				popReal(80, 3),
				popReal(100, 21),
				push(80, a, 14, 1000+4*jbStep, 5, pushStaleSource),
				popReal(120, 22),
			},
			want: jitterStats{played: 5, sourceSwitches: 1, staleSource: 2, remoteSSRC: b},
		},
		{
			// The new source's clock is just over a ptime behind the old
			// one's: its first frame would play two slots after the old
			// source's last, leaving a 20 ms hole; it moves up one slot.
			name: "source switch out of phase leaves no hole",
			ops: []jbOp{
				push(0, a, 10, 1000, 1, pushAccepted),
				push(20, a, 11, 1000+jbStep, 2, pushAccepted), // plays at 60
				popReal(40, 1),
				// B's first packet at 41 would play at the first tick
				// >= 81: 100, leaving 80 empty. It plays at 80.
				push(41, b, 500, 77777, 21, pushAccepted),
				popReal(60, 2),
				popReal(80, 21),
				push(61, b, 501, 77777+jbStep, 22, pushAccepted),
				popReal(100, 22),
			},
			want: jitterStats{played: 4, sourceSwitches: 1, remoteSSRC: b},
		},
		{
			// A's first packet came a frame later than the one-hole case
			// (its device was descheduled, docs/benchmarks.md §23): it
			// starts a slot early, one hole instead of two.
			name: "source switch two slots after the old frames leaves one hole, not two",
			ops: []jbOp{
				push(0, a, 10, 1000, 1, pushAccepted),
				push(20, a, 11, 1000+jbStep, 2, pushAccepted), // plays at 60
				popReal(40, 1),
				// B's first packet at 61 would play at the first tick
				// >= 101: 120, leaving 80 and 100 empty. It plays at 100.
				push(61, b, 500, 77777, 21, pushAccepted),
				popReal(60, 2),
				popKind(80, frameConcealed, 1),
				popReal(100, 21),
				push(81, b, 501, 77777+jbStep, 22, pushAccepted),
				popReal(120, 22),
			},
			want: jitterStats{played: 4, concealed: 1, sourceSwitches: 1, longestGapFrames: 1, remoteSSRC: b},
		},
		{
			// The old source's frames ran out a frame before the new
			// source's first packet (A closed its provisional session at
			// step 8, its final one sent late): while the gap is still
			// being concealed the new source starts a slot early too.
			name: "source switch just after the old frames ran out shortens the gap by a slot",
			ops: []jbOp{
				push(0, a, 10, 1000, 1, pushAccepted),
				push(20, a, 11, 1000+jbStep, 2, pushAccepted),
				popReal(40, 1),
				popReal(60, 2),
				popKind(80, frameConcealed, 1),
				// B's first packet at 81 would play at 140 (>= 121),
				// leaving 100 and 120 empty. It plays at 120.
				push(81, b, 500, 77777, 21, pushAccepted),
				popKind(100, frameConcealed, 2),
				popReal(120, 21),
				push(101, b, 501, 77777+jbStep, 22, pushAccepted),
				popReal(140, 22),
			},
			want: jitterStats{played: 4, concealed: 2, sourceSwitches: 1, longestGapFrames: 2, remoteSSRC: b},
		},
		{
			// Long after the old source stopped, a new one gets its
			// whole delay: no slot is taken from its margin.
			name: "source switch after a long silence keeps the full delay",
			ops: []jbOp{
				push(0, a, 10, 1000, 1, pushAccepted),
				popReal(40, 1),
				popKind(60, frameConcealed, 1),
				popKind(80, frameConcealed, 2),
				popKind(100, frameConcealed, 3),
				popKind(120, frameSilence, 4),
				push(121, b, 500, 77777, 21, pushAccepted), // >= 161: 180
				popKind(140, frameSilence, 5),
				popKind(160, frameSilence, 6),
				popReal(180, 21),
			},
			want: jitterStats{played: 2, concealed: 6, sourceSwitches: 1, longestGapFrames: 6, remoteSSRC: b},
		},
		{
			name: "source switch before playout restarts the delay",
			ops: []jbOp{
				push(0, a, 10, 1000, 1, pushAccepted),
				push(10, b, 500, 5, 21, pushAccepted),
				popKind(40, frameNone, 0),
				popReal(50, 21),
			},
			want: jitterStats{played: 1, sourceSwitches: 1, remoteSSRC: b},
		},
		{
			name: "replaced source takes over again after it went silent",
			ops: []jbOp{
				push(0, a, 10, 1000, 1, pushAccepted),
				push(10, b, 500, 5, 21, pushAccepted),
				push(20, a, 11, 1000+jbStep, 2, pushStaleSource),
				popReal(50, 21),
				// B stops; 300 ms later A (rollback) resumes.
				push(310, a, 12, 1000+16*jbStep, 3, pushAccepted),
			},
			want: jitterStats{played: 1, sourceSwitches: 2, staleSource: 1, remoteSSRC: a},
		},
		{
			// The endpoint's window (a few packet times): the source
			// that was replaced is back 100 ms after the new one went
			// silent (a puller that died after step 4, B resuming).
			name:  "replaced source takes over after the configured stale window",
			stale: 100 * time.Millisecond,
			ops: []jbOp{
				push(0, a, 10, 1000, 1, pushAccepted),
				push(10, b, 500, 5, 21, pushAccepted),
				push(20, b, 501, 5+jbStep, 22, pushAccepted),
				push(100, a, 11, 1000+5*jbStep, 2, pushStaleSource), // 80 ms after B's last
				push(121, a, 12, 1000+6*jbStep, 3, pushAccepted),    // 101 ms after it
			},
			want: jitterStats{sourceSwitches: 2, staleSource: 1, remoteSSRC: a},
		},
		{
			name: "default stale window keeps a replaced source out for 250 ms",
			ops: []jbOp{
				push(0, a, 10, 1000, 1, pushAccepted),
				push(10, b, 500, 5, 21, pushAccepted),
				push(121, a, 11, 1000+6*jbStep, 2, pushStaleSource),
				push(259, a, 12, 1000+13*jbStep, 3, pushStaleSource),
				push(261, a, 13, 1000+14*jbStep, 4, pushAccepted),
			},
			want: jitterStats{sourceSwitches: 2, staleSource: 2, remoteSSRC: a},
		},
		{
			name: "timestamp jump far ahead re-anchors",
			ops: []jbOp{
				push(0, a, 10, 1000, 1, pushAccepted),
				popReal(40, 1),
				push(50, a, 11, 9_000_000, 2, pushAccepted),
				popKind(60, frameConcealed, 1),
				popKind(80, frameConcealed, 2),
				popReal(100, 2), // 50 ms + 40 ms delay: first tick at or after 90
			},
			want: jitterStats{played: 2, concealed: 2, resyncs: 1, longestGapFrames: 2},
		},
		{
			name: "playout started long after the packets skips stale ones",
			ops: ops(
				stream(0, a, 10, 1000, 1, 5),
				one(popKind(1000, frameSilence, 1)),
			),
			want: jitterStats{concealed: 1},
		},
		{
			name: "large sequence jump confirmed by the next packet restarts the count",
			ops: []jbOp{
				push(0, a, 10, 1000, 1, pushAccepted),
				push(20, a, 40000, 1000+jbStep, 2, pushAccepted),
				push(40, a, 40001, 1000+2*jbStep, 3, pushAccepted),
				popReal(40, 1), popReal(60, 2), popReal(80, 3),
			},
			want: jitterStats{played: 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			jb := newTestJitterBufferStale(tt.stale)
			t0 := time.Unix(1_700_000_000, 0)
			for i, op := range tt.ops {
				at := t0.Add(time.Duration(op.at) * time.Millisecond)
				if !op.pop {
					if got := jb.push(op.ssrc, op.seq, op.ts, []byte{op.payload}, at); got != op.want {
						t.Fatalf("op %d: push(ssrc %#x seq %d ts %d) at %dms = %v, want %v", i, op.ssrc, op.seq, op.ts, op.at, got, op.want)
					}
					continue
				}
				f := jb.pop(at)
				if f.kind != op.kind {
					t.Fatalf("op %d: pop at %dms = %v, want %v", i, op.at, f.kind, op.kind)
				}
				if f.kind == frameReal && (len(f.payload) != 1 || f.payload[0] != op.wantPay) {
					t.Fatalf("op %d: pop at %dms played %v, want [%d]", i, op.at, f.payload, op.wantPay)
				}
				if op.run != 0 && f.run != op.run {
					t.Fatalf("op %d: pop at %dms run %d, want %d", i, op.at, f.run, op.run)
				}
			}
			got := jb.stats()
			got.jitter = 0
			want := tt.want
			if want.remoteSSRC == 0 {
				want.remoteSSRC = a
			}
			if got != want {
				t.Errorf("stats\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestJitterBufferInterarrivalJitter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		offsets  []int // arrival deviation per packet, ms
		wantZero bool
	}{
		{name: "perfectly paced", offsets: []int{0, 0, 0, 0, 0, 0}, wantZero: true},
		{name: "alternating 10 ms", offsets: []int{0, 10, 0, 10, 0, 10, 0, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			jb := newTestJitterBuffer()
			t0 := time.Unix(1_700_000_000, 0)
			for i, off := range tt.offsets {
				at := t0.Add(time.Duration(20*i+off) * time.Millisecond)
				jb.push(1, uint16(i), uint32(i*jbStep), []byte{1}, at)
			}
			j := jb.stats().jitter
			if tt.wantZero && j != 0 {
				t.Fatalf("jitter = %v, want 0", j)
			}
			// RFC 3550 A.8: each |D| is 10 ms; J moves 1/16 of the way
			// toward it per packet, so after 7 samples 0 < J < 10 ms.
			if !tt.wantZero && (j <= 0 || j >= 10*time.Millisecond) {
				t.Fatalf("jitter = %v, want in (0, 10ms)", j)
			}
		})
	}
}

func TestConceal(t *testing.T) {
	t.Parallel()
	last := []int16{400, -400, 8, 0}
	tests := []struct {
		name string
		last []int16
		run  int
		want []int16
	}{
		{name: "first missing frame at 3/4", last: last, run: 1, want: []int16{300, -300, 6, 0}},
		{name: "second at 2/4", last: last, run: 2, want: []int16{200, -200, 4, 0}},
		{name: "third at 1/4", last: last, run: 3, want: []int16{100, -100, 2, 0}},
		{name: "then silence", last: last, run: 4, want: []int16{0, 0, 0, 0}},
		{name: "nothing to repeat", last: nil, run: 1, want: []int16{0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dst := []int16{1, 2, 3, 4}
			conceal(dst, tt.last, tt.run)
			for i := range dst {
				if dst[i] != tt.want[i] {
					t.Fatalf("conceal = %v, want %v", dst, tt.want)
				}
			}
		})
	}
}

func TestJitterSlots(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		ptime, delay time.Duration
		want         int
	}{
		{name: "default", ptime: 20 * time.Millisecond, delay: 40 * time.Millisecond, want: 16},
		{name: "200ms", ptime: 20 * time.Millisecond, delay: 200 * time.Millisecond, want: 32},
		{name: "max", ptime: time.Millisecond, delay: MaxJitterDelay, want: 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := jitterSlots(tt.ptime, tt.delay); got != tt.want {
				t.Fatalf("jitterSlots(%v, %v) = %d, want %d", tt.ptime, tt.delay, got, tt.want)
			}
		})
	}
}

func TestFloorDiv(t *testing.T) {
	t.Parallel()
	tests := []struct{ a, b, want int64 }{
		{7, 2, 3}, {-7, 2, -4}, {-8, 2, -4}, {0, 5, 0}, {-1, 160, -1}, {159, 160, 0},
	}
	for _, tt := range tests {
		if got := floorDiv(tt.a, tt.b); got != tt.want {
			t.Errorf("floorDiv(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
