package codecs

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/zaf/g711"
)

// law pairs a built-in codec with zaf/g711's reference functions for it.
type law struct {
	codec     Codec
	encode    func(int16) uint8
	decode    func(uint8) int16
	encodeLE  func([]byte) []byte // reference byte-stream encoder
	decodeLE  func([]byte) []byte // reference byte-stream decoder
	wantPT    uint8
	wantName  string
	wantShift int
}

func laws() map[string]law {
	return map[string]law{
		"PCMU": {
			codec: PCMU(), encode: g711.EncodeUlawFrame, decode: g711.DecodeUlawFrame,
			encodeLE: g711.EncodeUlaw, decodeLE: g711.DecodeUlaw,
			wantPT: 0, wantName: "PCMU", wantShift: ulawEncodeShift,
		},
		"PCMA": {
			codec: PCMA(), encode: g711.EncodeAlawFrame, decode: g711.DecodeAlawFrame,
			encodeLE: g711.EncodeAlaw, decodeLE: g711.DecodeAlaw,
			wantPT: 8, wantName: "PCMA", wantShift: alawEncodeShift,
		},
	}
}

// allSamples returns every int16 value once, from -32768 to 32767.
func allSamples() []int16 {
	pcm := make([]int16, 1<<16)
	for i := range pcm {
		pcm[i] = int16(i - 1<<15)
	}
	return pcm
}

func TestG711Descriptor(t *testing.T) {
	t.Parallel()
	for name, l := range laws() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := l.codec.Descriptor()
			want := Descriptor{Name: l.wantName, PayloadType: l.wantPT, SampleRate: 8000, ClockRate: 8000, Channels: 1}
			if d != want {
				t.Fatalf("Descriptor() = %+v, want %+v", d, want)
			}
			if got := d.SamplesPerFrame(20 * time.Millisecond); got != 160 {
				t.Errorf("SamplesPerFrame(20ms) = %d, want 160", got)
			}
			if got := d.TimestampStep(20 * time.Millisecond); got != 160 {
				t.Errorf("TimestampStep(20ms) = %d, want 160", got)
			}
		})
	}
}

// TestG711EncodeBitExact encodes all 65536 int16 values in one call and
// compares each byte with zaf/g711's per-sample encoder and, as a second
// opinion, with its byte-stream encoder.
func TestG711EncodeBitExact(t *testing.T) {
	t.Parallel()
	pcm := allSamples()
	le := make([]byte, 2*len(pcm))
	for i, s := range pcm {
		binary.LittleEndian.PutUint16(le[2*i:], uint16(s))
	}
	for name, l := range laws() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := make([]byte, len(pcm))
			n, err := l.codec.Encode(got, pcm)
			if err != nil || n != len(pcm) {
				t.Fatalf("Encode = %d, %v; want %d, nil", n, err, len(pcm))
			}
			stream := l.encodeLE(le)
			bad := 0
			for i, s := range pcm {
				if want := l.encode(s); got[i] != want || stream[i] != want {
					if bad++; bad <= 5 {
						t.Errorf("sample %d: Encode = %#02x, zaf frame = %#02x, zaf stream = %#02x", s, got[i], want, stream[i])
					}
				}
			}
			if bad > 0 {
				t.Fatalf("%d of %d samples differ from zaf/g711", bad, len(pcm))
			}
		})
	}
}

// TestG711DecodeBitExact decodes all 256 codes and compares with zaf/g711.
func TestG711DecodeBitExact(t *testing.T) {
	t.Parallel()
	codes := make([]byte, 256)
	for i := range codes {
		codes[i] = byte(i)
	}
	for name, l := range laws() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := make([]int16, len(codes))
			n, err := l.codec.Decode(got, codes)
			if err != nil || n != len(codes) {
				t.Fatalf("Decode = %d, %v; want %d, nil", n, err, len(codes))
			}
			stream := l.decodeLE(codes)
			for i, c := range codes {
				want := l.decode(c)
				streamed := int16(binary.LittleEndian.Uint16(stream[2*i:]))
				if got[i] != want || streamed != want {
					t.Errorf("code %#02x: Decode = %d, zaf frame = %d, zaf stream = %d", c, got[i], want, streamed)
				}
			}
		})
	}
}

// TestG711EncodeShift pins the index widths the generator found (14 bits
// for μ-law, 12 for A-law), so a change in zaf/g711 that alters them is
// noticed here and not only as a size change of g711_tables.go.
func TestG711EncodeShift(t *testing.T) {
	t.Parallel()
	want := map[string]int{"PCMU": 2, "PCMA": 4}
	for name, l := range laws() {
		if l.wantShift != want[name] {
			t.Errorf("%s: encode table shift = %d, want %d", name, l.wantShift, want[name])
		}
	}
}

func TestG711ShortBuffer(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		samples int // input length
		dst     int // dst length
		wantErr bool
	}{
		"empty input, empty dst": {samples: 0, dst: 0},
		"exact":                  {samples: 160, dst: 160},
		"larger dst":             {samples: 160, dst: 320},
		"one short":              {samples: 160, dst: 159, wantErr: true},
		"nil dst":                {samples: 1, dst: 0, wantErr: true},
	}
	for lname, l := range laws() {
		for name, tc := range tests {
			t.Run(lname+"/"+name, func(t *testing.T) {
				t.Parallel()
				pcm := make([]int16, tc.samples)
				enc := make([]byte, tc.dst)
				n, err := l.codec.Encode(enc, pcm)
				check(t, "Encode", n, err, tc.samples, tc.wantErr)

				payload := make([]byte, tc.samples)
				dec := make([]int16, tc.dst)
				n, err = l.codec.Decode(dec, payload)
				check(t, "Decode", n, err, tc.samples, tc.wantErr)
			})
		}
	}
}

func check(t *testing.T, op string, n int, err error, want int, wantErr bool) {
	t.Helper()
	if wantErr {
		if !errors.Is(err, ErrShortBuffer) || n != 0 {
			t.Errorf("%s = %d, %v; want 0, ErrShortBuffer", op, n, err)
		}
		return
	}
	if err != nil || n != want {
		t.Errorf("%s = %d, %v; want %d, nil", op, n, err, want)
	}
}

// TestG711NoAllocs guards the per-frame path: one 20 ms frame must encode
// and decode without touching the heap.
func TestG711NoAllocs(t *testing.T) {
	for name, l := range laws() {
		pcm := make([]int16, 160)
		for i := range pcm {
			pcm[i] = int16(i * 397)
		}
		payload := make([]byte, 160)
		out := make([]int16, 160)
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := l.codec.Encode(payload, pcm); err != nil {
				t.Fatal(err)
			}
			if _, err := l.codec.Decode(out, payload); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per encode+decode, want 0", name, allocs)
		}
	}
}
