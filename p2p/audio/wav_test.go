package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// chunk returns a RIFF chunk: id, declared size, body, and a pad byte when
// the body length is odd.
func chunk(id string, size uint32, body []byte) []byte {
	b := append([]byte(id), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(b[4:], size)
	b = append(b, body...)
	if len(body)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

// chunkOf is chunk with the size taken from the body.
func chunkOf(id string, body []byte) []byte { return chunk(id, uint32(len(body)), body) }

// riff wraps chunks in a RIFF header of the given form type; a negative
// size means "compute it".
func riff(form string, size int64, chunks ...[]byte) []byte {
	body := []byte(form)
	for _, c := range chunks {
		body = append(body, c...)
	}
	if size < 0 {
		size = int64(len(body))
	}
	b := append([]byte("RIFF"), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(b[4:], uint32(size))
	return append(b, body...)
}

// fmtSpec is the content of a fmt chunk.
type fmtSpec struct {
	format, channels uint16
	rate             uint32
	blockAlign, bits uint16
}

func pcmFmt() fmtSpec { return fmtSpec{format: 1, channels: 1, rate: 8000, blockAlign: 2, bits: 16} }

func (f fmtSpec) body() []byte {
	b := make([]byte, 16)
	le := binary.LittleEndian
	le.PutUint16(b[0:], f.format)
	le.PutUint16(b[2:], f.channels)
	le.PutUint32(b[4:], f.rate)
	le.PutUint32(b[8:], f.rate*uint32(f.blockAlign))
	le.PutUint16(b[12:], f.blockAlign)
	le.PutUint16(b[14:], f.bits)
	return b
}

func (f fmtSpec) with(change func(*fmtSpec)) []byte {
	change(&f)
	return chunkOf("fmt ", f.body())
}

func samplesLE(s ...int16) []byte {
	b := make([]byte, 2*len(s))
	for i, v := range s {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	return b
}

func TestWAVRoundTrip(t *testing.T) {
	t.Parallel()
	tests := map[string]*Clip{
		"empty":     {SampleRate: 8000, Samples: []int16{}},
		"extremes":  {SampleRate: 8000, Samples: []int16{math.MinInt16, -1, 0, 1, math.MaxInt16}},
		"wideband":  {SampleRate: 16000, Samples: []int16{100, -100}},
		"multi-buf": {SampleRate: 8000, Samples: ramp(5000)}, // > one 4 KiB write
	}
	for name, c := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := WriteWAV(&buf, c); err != nil {
				t.Fatal(err)
			}
			if got, want := buf.Len(), 44+2*len(c.Samples); got != want {
				t.Fatalf("wrote %d bytes, want %d", got, want)
			}
			got, err := ReadWAV(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if got.SampleRate != c.SampleRate || !slices.Equal(got.Samples, c.Samples) {
				t.Fatalf("round trip: rate %d, %d samples; want rate %d, %d samples (or contents differ)",
					got.SampleRate, len(got.Samples), c.SampleRate, len(c.Samples))
			}
		})
	}
}

func ramp(n int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(i*37 - 20000)
	}
	return s
}

// TestWAVHeaderCanonical pins the header bytes WriteWAV produces, so other
// tools (sox, ffmpeg, players) read our recordings.
func TestWAVHeaderCanonical(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := WriteWAV(&buf, &Clip{SampleRate: 8000, Samples: []int16{1, 2}}); err != nil {
		t.Fatal(err)
	}
	want := riff("WAVE", -1, chunkOf("fmt ", pcmFmt().body()), chunkOf("data", samplesLE(1, 2)))
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("WriteWAV bytes\n got %x\nwant %x", buf.Bytes(), want)
	}
}

func TestWriteWAVErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		clip    *Clip
		wantMsg string
	}{
		"nil clip":      {clip: nil, wantMsg: "nil clip"},
		"zero rate":     {clip: &Clip{}, wantMsg: "sample rate 0 Hz"},
		"negative rate": {clip: &Clip{SampleRate: -8000}, wantMsg: "sample rate -8000 Hz"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := WriteWAV(&bytes.Buffer{}, tc.clip)
			if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("WriteWAV = %v; want ErrInvalidArgument mentioning %q", err, tc.wantMsg)
			}
		})
	}
}

// TestReadWAVAccepts covers well-formed files that are not the canonical
// 44-byte layout.
func TestReadWAVAccepts(t *testing.T) {
	t.Parallel()
	data := chunkOf("data", samplesLE(10, -10, 300))
	fmt18 := append(pcmFmt().body(), 0, 0) // WAVEFORMATEX with cbSize = 0
	tests := map[string][]byte{
		"canonical":              riff("WAVE", -1, chunkOf("fmt ", pcmFmt().body()), data),
		"18-byte fmt":            riff("WAVE", -1, chunkOf("fmt ", fmt18), data),
		"odd LIST before fmt":    riff("WAVE", -1, chunkOf("LIST", []byte("INFOx")), chunkOf("fmt ", pcmFmt().body()), data),
		"fact between fmt, data": riff("WAVE", -1, chunkOf("fmt ", pcmFmt().body()), chunkOf("fact", samplesLE(3, 0)), data),
		"chunk after data":       riff("WAVE", -1, chunkOf("fmt ", pcmFmt().body()), data, chunkOf("LIST", []byte("junk"))),
		"streaming RIFF size":    riff("WAVE", math.MaxUint32, chunkOf("fmt ", pcmFmt().body()), data),
		"bytes after RIFF":       append(riff("WAVE", -1, chunkOf("fmt ", pcmFmt().body()), data), "trailing"...),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := ReadWAV(bytes.NewReader(in))
			if err != nil {
				t.Fatalf("ReadWAV: %v", err)
			}
			if c.SampleRate != 8000 || !slices.Equal(c.Samples, []int16{10, -10, 300}) {
				t.Fatalf("ReadWAV = rate %d samples %v; want 8000 [10 -10 300]", c.SampleRate, c.Samples)
			}
		})
	}
}

// TestReadWAVErrors walks every rejection path and checks the message says
// what is wrong.
func TestReadWAVErrors(t *testing.T) {
	t.Parallel()
	good := pcmFmt()
	fmtOK := chunkOf("fmt ", good.body())
	data := chunkOf("data", samplesLE(1, 2, 3))
	tests := map[string]struct {
		in      []byte
		wantErr error // ErrInvalidWAV unless set
		wantMsg string
	}{
		"empty input":          {in: nil, wantMsg: "truncated RIFF header (0 of 12 bytes)"},
		"short header":         {in: []byte("RIFF\x04\x00"), wantMsg: "truncated RIFF header (6 of 12 bytes)"},
		"not RIFF":             {in: riff("WAVE", -1, fmtOK, data)[4:], wantMsg: "not a RIFF file"},
		"big-endian RIFX":      {in: append([]byte("RIFX"), riff("WAVE", -1, fmtOK, data)[4:]...), wantMsg: `not a RIFF file (starts with "RIFX")`},
		"not WAVE":             {in: riff("AVI ", -1, fmtOK, data), wantMsg: `RIFF form type "AVI " is not WAVE`},
		"RIFF size 0":          {in: riff("WAVE", 0, fmtOK, data), wantMsg: "RIFF size 0 is too small"},
		"float format":         {in: riff("WAVE", -1, good.with(func(f *fmtSpec) { f.format = 3 }), data), wantMsg: "format 3 (IEEE float) is not PCM (1)"},
		"mu-law format":        {in: riff("WAVE", -1, good.with(func(f *fmtSpec) { f.format = 7 }), data), wantMsg: "format 7 (μ-law) is not PCM (1)"},
		"extensible":           {in: riff("WAVE", -1, good.with(func(f *fmtSpec) { f.format = 0xFFFE }), data), wantMsg: "format 65534 (extensible) is not PCM"},
		"unknown format":       {in: riff("WAVE", -1, good.with(func(f *fmtSpec) { f.format = 0x1234 }), data), wantMsg: "format 4660 is not PCM (1)"},
		"stereo":               {in: riff("WAVE", -1, good.with(func(f *fmtSpec) { f.channels, f.blockAlign = 2, 4 }), data), wantMsg: "2 channels, want mono (1)"},
		"8-bit":                {in: riff("WAVE", -1, good.with(func(f *fmtSpec) { f.bits, f.blockAlign = 8, 1 }), data), wantMsg: "8 bits per sample, want 16"},
		"24-bit":               {in: riff("WAVE", -1, good.with(func(f *fmtSpec) { f.bits, f.blockAlign = 24, 3 }), data), wantMsg: "24 bits per sample"},
		"zero sample rate":     {in: riff("WAVE", -1, good.with(func(f *fmtSpec) { f.rate = 0 }), data), wantMsg: "sample rate 0 Hz"},
		"bad block align":      {in: riff("WAVE", -1, good.with(func(f *fmtSpec) { f.blockAlign = 4 }), data), wantMsg: "block align 4, want 2"},
		"short fmt chunk":      {in: riff("WAVE", -1, chunkOf("fmt ", good.body()[:14]), data), wantMsg: "fmt chunk is 14 bytes, want at least 16"},
		"truncated fmt":        {in: riff("WAVE", -1, chunkOf("fmt ", good.body()))[:12+8+10], wantMsg: "truncated fmt chunk"},
		"second fmt":           {in: riff("WAVE", -1, fmtOK, fmtOK, data), wantMsg: "second fmt chunk"},
		"missing fmt":          {in: riff("WAVE", -1, chunkOf("LIST", []byte("info"))), wantMsg: "missing fmt chunk"},
		"no chunks":            {in: riff("WAVE", -1), wantMsg: "missing fmt chunk"},
		"data before fmt":      {in: riff("WAVE", -1, data, fmtOK), wantMsg: "data chunk before fmt chunk"},
		"missing data":         {in: riff("WAVE", -1, fmtOK, chunkOf("LIST", []byte("info"))), wantMsg: "missing data chunk"},
		"odd data size":        {in: riff("WAVE", -1, fmtOK, chunkOf("data", []byte{1, 2, 3})), wantMsg: "data chunk size 3 is not a whole number of 16-bit samples"},
		"truncated data":       {in: riff("WAVE", math.MaxUint32, fmtOK, chunk("data", 320, samplesLE(1, 2, 3))), wantMsg: "truncated data: chunk declares 320 bytes, only 6 present"},
		"chunk size overflow":  {in: riff("WAVE", 4+24+8+6, fmtOK, chunk("data", 1000, samplesLE(1, 2, 3))), wantMsg: `chunk "data" size 1000 overflows the RIFF size (6 bytes left)`},
		"truncated chunk head": {in: append(riff("WAVE", math.MaxUint32, fmtOK), "dat"...), wantMsg: "truncated chunk header (3 of 8 bytes)"},
		"truncated LIST chunk": {in: riff("WAVE", math.MaxUint32, chunk("LIST", 100, []byte("info"))), wantMsg: `truncated "LIST" chunk: 4 of 100 bytes present`},
		"data over limit": {
			in:      riff("WAVE", math.MaxUint32, fmtOK, chunk("data", MaxWAVDataBytes+2, samplesLE(1))),
			wantErr: ErrTooLarge, wantMsg: "data chunk is 67108866 bytes, limit is 67108864",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := ReadWAV(bytes.NewReader(tc.in))
			wantErr := tc.wantErr
			if wantErr == nil {
				wantErr = ErrInvalidWAV
			}
			if !errors.Is(err, wantErr) || c != nil {
				t.Fatalf("ReadWAV = %v, %v; want nil, %v", c, err, wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tc.wantMsg)
			}
			if !strings.HasPrefix(err.Error(), "audio: wav: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestReadWAVFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.wav")
	if err := os.WriteFile(bad, []byte("RIFF\x00\x00\x00\x00AVI "), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadWAVFile(bad)
	if want := "audio: wav " + bad + `: RIFF form type "AVI " is not WAVE`; !errors.Is(err, ErrInvalidWAV) || err.Error() != want+": invalid wav" {
		t.Errorf("ReadWAVFile(bad) = %v; want ErrInvalidWAV %q", err, want)
	}
	_, err = ReadWAVFile(filepath.Join(dir, "absent.wav"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadWAVFile(absent) = %v; want os.ErrNotExist", err)
	}
}

func TestWAVWriter(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "rec.wav")
	w, err := CreateWAV(path, 8000)
	if err != nil {
		t.Fatal(err)
	}
	tone, err := NewTone(440, 8000, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	var want []int16
	frame := make([]int16, 160)
	for range 500 { // 10 s: more than the 64 KiB write buffer
		if err := tone.ReadFrame(frame); err != nil {
			t.Fatal(err)
		}
		if err := w.WriteFrame(frame); err != nil {
			t.Fatal(err)
		}
		want = append(want, frame...)
	}
	if got := w.Frames(); got != 500 {
		t.Fatalf("Frames() = %d, want 500", got)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v, want nil (idempotent)", err)
	}
	if err := w.WriteFrame(frame); !errors.Is(err, ErrClosed) {
		t.Fatalf("WriteFrame after Close = %v, want ErrClosed", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != int64(44+2*len(want)) {
		t.Fatalf("file is %d bytes, want %d", st.Size(), 44+2*len(want))
	}
	c, err := ReadWAVFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.SampleRate != 8000 || !slices.Equal(c.Samples, want) {
		t.Fatalf("read back rate %d and %d samples, want 8000 and the %d written", c.SampleRate, len(c.Samples), len(want))
	}
}

// TestWAVWriterEmpty checks a recording with no frames is still a valid,
// empty WAV after Close.
func TestWAVWriterEmpty(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "empty.wav")
	w, err := CreateWAV(path, 16000)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := ReadWAVFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.SampleRate != 16000 || len(c.Samples) != 0 {
		t.Fatalf("got rate %d with %d samples, want 16000 and none", c.SampleRate, len(c.Samples))
	}
}

func TestCreateWAVErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := CreateWAV(filepath.Join(dir, "x.wav"), 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("CreateWAV(rate 0) = %v, want ErrInvalidArgument", err)
	}
	if _, err := CreateWAV(filepath.Join(dir, "no", "such", "dir.wav"), 8000); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CreateWAV(missing dir) = %v, want os.ErrNotExist", err)
	}
}

// TestWAVWriterNoAllocs guards the per-frame path of the recorder.
func TestWAVWriterNoAllocs(t *testing.T) {
	w, err := CreateWAV(filepath.Join(t.TempDir(), "a.wav"), 8000)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	frame := make([]int16, 160)
	allocs := testing.AllocsPerRun(100, func() {
		if err := w.WriteFrame(frame); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("WriteFrame: %v allocs per frame, want 0", allocs)
	}
}

// TestWAVWriterValidWithoutClose checks what a recording killed mid-call
// leaves behind: without Close, the file on disk is a valid WAV whose
// header sizes agree with each other and hold all but at most the last
// second of what was written.
func TestWAVWriterValidWithoutClose(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		rate    int
		seconds int
	}{
		{"under a second", 8000, 0},
		{"8 kHz 5 s", 8000, 5},
		{"48 kHz 3 s", 48000, 3}, // a second outgrows the 64 KiB buffer
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "rec.wav")
			w, err := CreateWAV(path, tc.rate)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			frame := make([]int16, tc.rate/50) // 20 ms
			for i := range frame {
				frame[i] = int16(i + 1)
			}
			frames := tc.seconds*50 + 25 // and half a second more
			for range frames {
				if err := w.WriteFrame(frame); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) < 44 {
				t.Fatalf("file is %d bytes, want at least the 44-byte header", len(b))
			}
			riff := int64(binary.LittleEndian.Uint32(b[4:8]))
			data := int64(binary.LittleEndian.Uint32(b[40:44]))
			if riff != data+36 {
				t.Errorf("RIFF size %d, data size %d: want RIFF = data + 36", riff, data)
			}
			if int64(len(b)) < 44+data {
				t.Errorf("header claims %d data bytes, file holds %d", data, len(b)-44)
			}
			c, err := ReadWAVFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.seconds * tc.rate; len(c.Samples) < want {
				t.Errorf("read back %d samples, want at least %d (%d s)", len(c.Samples), want, tc.seconds)
			}
			if len(c.Samples) > frames*len(frame) {
				t.Errorf("read back %d samples, more than the %d written", len(c.Samples), frames*len(frame))
			}
			for i, v := range c.Samples {
				if want := frame[i%len(frame)]; v != want {
					t.Fatalf("sample %d = %d, want %d", i, v, want)
				}
			}
		})
	}
}
