package audio

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
)

var _ Sink = (*WAVWriter)(nil)

// WAV support is deliberately narrow: RIFF/WAVE with a PCM (format 1),
// mono, 16-bit little-endian fmt chunk, which is what Baton plays and
// records. Anything else is refused with an error that names the problem,
// so a person can fix the file (e.g. `sox in.wav -r 8000 -c 1 -b 16 out.wav`).

// MaxWAVDataBytes caps the data chunk ReadWAV accepts: 64 MiB, about 70
// minutes of 8 kHz audio. Larger chunks are refused with ErrTooLarge before
// any of them is read.
const MaxWAVDataBytes = 64 << 20

const (
	wavHeaderBytes = 44 // RIFF header + 16-byte fmt chunk + data chunk header
	wavFormatPCM   = 1
	// maxWAVSampleRate keeps the fmt chunk's byte rate (rate × 2) in 32 bits.
	maxWAVSampleRate = math.MaxUint32 / 2
	// maxWAVWriteBytes is the most data a RIFF size field can describe.
	maxWAVWriteBytes = math.MaxUint32 - (wavHeaderBytes - 8)
)

// invalidWAV builds an ErrInvalidWAV error saying which part is wrong. The
// "audio: wav" prefix is added by ReadWAV or ReadWAVFile.
func invalidWAV(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalidWAV)
}

// ReadWAVFile reads a whole WAV file; see ReadWAV.
func ReadWAVFile(path string) (*Clip, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audio: wav: %w", err) // *PathError names the file
	}
	defer f.Close()
	c, err := readWAV(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("audio: wav %s: %w", path, err)
	}
	return c, nil
}

// ReadWAV reads a RIFF/WAVE stream holding 16-bit mono PCM. Chunks other
// than "fmt " and "data" (LIST, fact, cue, ...) are skipped; anything after
// the data chunk is not read. Errors wrap ErrInvalidWAV (or ErrTooLarge
// when the data chunk exceeds MaxWAVDataBytes) and say what is wrong.
func ReadWAV(r io.Reader) (*Clip, error) {
	c, err := readWAV(r)
	if err != nil {
		return nil, fmt.Errorf("audio: wav: %w", err)
	}
	return c, nil
}

func readWAV(r io.Reader) (*Clip, error) {
	var hdr [12]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, invalidWAV("truncated RIFF header (%d of 12 bytes)", n)
	}
	if string(hdr[0:4]) != "RIFF" {
		return nil, invalidWAV("not a RIFF file (starts with %q)", hdr[0:4])
	}
	if string(hdr[8:12]) != "WAVE" {
		return nil, invalidWAV("RIFF form type %q is not WAVE", hdr[8:12])
	}
	riffSize := binary.LittleEndian.Uint32(hdr[4:8])
	// Bytes of the RIFF body left for chunks (the body starts with "WAVE").
	remaining := int64(riffSize) - 4
	if remaining < 0 {
		return nil, invalidWAV("RIFF size %d is too small for a WAVE form", riffSize)
	}

	var rate int // 0 until the fmt chunk is read
	for remaining >= 8 {
		var ch [8]byte
		n, err := io.ReadFull(r, ch[:])
		if err == io.EOF {
			break // RIFF size promised more, but a clean end is not an error by itself
		}
		if err != nil {
			return nil, invalidWAV("truncated chunk header (%d of 8 bytes)", n)
		}
		id, size := string(ch[0:4]), int64(binary.LittleEndian.Uint32(ch[4:8]))
		remaining -= 8
		if size > remaining {
			return nil, invalidWAV("chunk %q size %d overflows the RIFF size (%d bytes left)", id, size, remaining)
		}
		switch id {
		case "fmt ":
			if rate != 0 {
				return nil, invalidWAV("second fmt chunk")
			}
			if rate, err = readFmt(r, size); err != nil {
				return nil, err
			}
		case "data":
			if rate == 0 {
				return nil, invalidWAV("data chunk before fmt chunk (missing fmt chunk)")
			}
			samples, err := readData(r, size)
			if err != nil {
				return nil, err
			}
			return &Clip{SampleRate: rate, Samples: samples}, nil
		default:
			if err := skip(r, size); err != nil {
				return nil, invalidWAV("truncated %q chunk: %v", id, err)
			}
		}
		remaining -= size
		// Chunks are padded to an even length (RIFF). Some writers omit the
		// pad of a final chunk, so only expect it if the RIFF size has room.
		if size%2 == 1 && remaining > 0 {
			if err := skip(r, 1); err != nil {
				return nil, invalidWAV("truncated pad byte after %q chunk", id)
			}
			remaining--
		}
	}
	if rate == 0 {
		return nil, invalidWAV("missing fmt chunk")
	}
	return nil, invalidWAV("missing data chunk")
}

// readFmt parses a fmt chunk of the given size and returns the sample rate.
func readFmt(r io.Reader, size int64) (int, error) {
	if size < 16 {
		return 0, invalidWAV("fmt chunk is %d bytes, want at least 16", size)
	}
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, invalidWAV("truncated fmt chunk")
	}
	// Extension bytes (cbSize and what follows) do not matter for PCM.
	if err := skip(r, size-16); err != nil {
		return 0, invalidWAV("truncated fmt chunk")
	}
	var (
		format     = binary.LittleEndian.Uint16(b[0:2])
		channels   = binary.LittleEndian.Uint16(b[2:4])
		rate       = binary.LittleEndian.Uint32(b[4:8])
		blockAlign = binary.LittleEndian.Uint16(b[12:14])
		bits       = binary.LittleEndian.Uint16(b[14:16])
	)
	switch {
	case format != wavFormatPCM:
		return 0, invalidWAV("format %s is not PCM (1)", formatName(format))
	case channels != 1:
		return 0, invalidWAV("%d channels, want mono (1)", channels)
	case bits != 16:
		return 0, invalidWAV("%d bits per sample, want 16", bits)
	case rate == 0 || rate > maxWAVSampleRate:
		return 0, invalidWAV("sample rate %d Hz", rate)
	case blockAlign != 2:
		return 0, invalidWAV("block align %d, want 2 for 16-bit mono", blockAlign)
	}
	return int(rate), nil
}

// formatName renders a WAVE format code with its common name, so the error
// tells a person what the file actually is.
func formatName(code uint16) string {
	var name string
	switch code {
	case 0x0002:
		name = "Microsoft ADPCM"
	case 0x0003:
		name = "IEEE float"
	case 0x0006:
		name = "A-law"
	case 0x0007:
		name = "μ-law"
	case 0x0011:
		name = "IMA ADPCM"
	case 0x0055:
		name = "MPEG layer 3"
	case 0xFFFE:
		name = "extensible"
	default:
		return fmt.Sprintf("%d", code)
	}
	return fmt.Sprintf("%d (%s)", code, name)
}

// readData reads a data chunk of size bytes as 16-bit little-endian samples.
// Memory grows with what is actually read, not with what the header
// claims, so a truncated file with a huge size field costs little.
func readData(r io.Reader, size int64) ([]int16, error) {
	if size > MaxWAVDataBytes {
		return nil, fmt.Errorf("data chunk is %d bytes, limit is %d: %w", size, MaxWAVDataBytes, ErrTooLarge)
	}
	if size%2 != 0 {
		return nil, invalidWAV("data chunk size %d is not a whole number of 16-bit samples", size)
	}
	samples := make([]int16, 0, min(size/2, 1<<16))
	var buf [4096]byte
	for read := int64(0); read < size; {
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), size-read)])
		for i := 0; i+1 < n; i += 2 {
			samples = append(samples, int16(binary.LittleEndian.Uint16(buf[i:])))
		}
		read += int64(n)
		if err != nil {
			return nil, invalidWAV("truncated data: chunk declares %d bytes, only %d present", size, read)
		}
	}
	return samples, nil
}

// skip discards n bytes of r.
func skip(r io.Reader, n int64) error {
	got, err := io.CopyN(io.Discard, r, n)
	if err == io.EOF {
		return fmt.Errorf("%d of %d bytes present", got, n)
	}
	return err
}

// wavHeader returns the 44-byte canonical header for 16-bit mono PCM at
// rate with dataBytes of samples.
func wavHeader(rate int, dataBytes uint32) [wavHeaderBytes]byte {
	var h [wavHeaderBytes]byte
	le := binary.LittleEndian
	copy(h[0:4], "RIFF")
	le.PutUint32(h[4:8], wavHeaderBytes-8+dataBytes)
	copy(h[8:12], "WAVE")
	copy(h[12:16], "fmt ")
	le.PutUint32(h[16:20], 16)
	le.PutUint16(h[20:22], wavFormatPCM)
	le.PutUint16(h[22:24], 1)              // channels
	le.PutUint32(h[24:28], uint32(rate))   // sample rate
	le.PutUint32(h[28:32], uint32(rate)*2) // byte rate
	le.PutUint16(h[32:34], 2)              // block align
	le.PutUint16(h[34:36], 16)             // bits per sample
	copy(h[36:40], "data")
	le.PutUint32(h[40:44], dataBytes)
	return h
}

func checkRate(op string, rate int) error {
	if rate <= 0 || rate > maxWAVSampleRate {
		return fmt.Errorf("audio: %s: sample rate %d Hz: %w", op, rate, ErrInvalidArgument)
	}
	return nil
}

// WriteWAV writes c as a 16-bit mono PCM WAV stream.
func WriteWAV(w io.Writer, c *Clip) error {
	if c == nil {
		return fmt.Errorf("audio: write wav: nil clip: %w", ErrInvalidArgument)
	}
	if err := checkRate("write wav", c.SampleRate); err != nil {
		return err
	}
	if int64(len(c.Samples))*2 > maxWAVWriteBytes {
		return fmt.Errorf("audio: write wav: %d samples do not fit a WAV file: %w", len(c.Samples), ErrTooLarge)
	}
	h := wavHeader(c.SampleRate, uint32(len(c.Samples)*2))
	if _, err := w.Write(h[:]); err != nil {
		return fmt.Errorf("audio: write wav: %w", err)
	}
	var buf [4096]byte
	for s := c.Samples; len(s) > 0; {
		n := min(len(s), len(buf)/2)
		for i, v := range s[:n] {
			binary.LittleEndian.PutUint16(buf[2*i:], uint16(v))
		}
		if _, err := w.Write(buf[:2*n]); err != nil {
			return fmt.Errorf("audio: write wav: %w", err)
		}
		s = s[n:]
	}
	return nil
}

// WAVWriter is a Sink that records frames to a WAV file. Writes are
// buffered, but every second of audio the buffer is flushed and the RIFF
// and data sizes in the header are rewritten, so the file on disk is always
// a valid WAV: a process that dies without Close (kill -9, a crash) loses
// at most the last second. Close flushes the rest and fixes the final sizes.
//
// WriteFrame is meant for one goroutine (the playout loop); Frames and Close
// may be called from others.
type WAVWriter struct {
	mu         sync.Mutex
	f          *os.File
	bw         *bufio.Writer
	rate       int
	scratch    []byte // reused frame encoding buffer
	hdr        [wavHeaderBytes]byte
	frames     int
	dataBytes  int64
	syncBytes  int64 // data bytes between header updates (one second)
	syncedData int64 // dataBytes at the last header update
	err        error // first write error; sticky
	closed     bool
	closeErr   error
}

// CreateWAV creates (or truncates) path and returns a WAVWriter recording
// 16-bit mono PCM at sampleRate.
func CreateWAV(path string, sampleRate int) (*WAVWriter, error) {
	if err := checkRate("create wav", sampleRate); err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("audio: create wav: %w", err)
	}
	return NewWAVWriter(f, sampleRate)
}

// NewWAVWriter returns a WAVWriter recording 16-bit mono PCM at sampleRate
// to f, which must be empty and open for writing (for example created with
// os.O_EXCL by a caller that must not overwrite a file). The writer owns f:
// it writes a valid empty WAV header at once and closes f on Close, or
// before returning an error.
func NewWAVWriter(f *os.File, sampleRate int) (*WAVWriter, error) {
	if err := checkRate("new wav writer", sampleRate); err != nil {
		f.Close()
		return nil, err
	}
	w := &WAVWriter{
		f:         f,
		bw:        bufio.NewWriterSize(f, 64<<10),
		rate:      sampleRate,
		syncBytes: int64(sampleRate) * 2,
	}
	// The header goes to the file now, not at the first flush, so even a
	// recording that never got a second of audio is a valid (empty) WAV.
	w.hdr = wavHeader(sampleRate, 0)
	if _, err := f.WriteAt(w.hdr[:], 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("audio: new wav writer: %w", err)
	}
	if _, err := f.Seek(wavHeaderBytes, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("audio: new wav writer: %w", err)
	}
	return w, nil
}

// WriteFrame appends pcm to the recording. After a write error every call
// returns that error; after Close it returns ErrClosed.
func (w *WAVWriter) WriteFrame(pcm []int16) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.closed:
		return fmt.Errorf("audio: wav writer: write frame: %w", ErrClosed)
	case w.err != nil:
		return w.err
	case w.dataBytes+int64(len(pcm))*2 > maxWAVWriteBytes:
		// A RIFF file cannot describe more; refuse instead of writing a
		// header that lies.
		return fmt.Errorf("audio: wav writer: recording would exceed %d bytes: %w", int64(maxWAVWriteBytes), ErrTooLarge)
	}
	if cap(w.scratch) < 2*len(pcm) {
		w.scratch = make([]byte, 2*len(pcm))
	}
	b := w.scratch[:2*len(pcm)]
	for i, v := range pcm {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	if _, err := w.bw.Write(b); err != nil {
		w.err = fmt.Errorf("audio: wav writer: %w", err)
		return w.err
	}
	w.frames++
	w.dataBytes += int64(len(b))
	if w.dataBytes-w.syncedData >= w.syncBytes {
		if err := w.sync(); err != nil {
			w.err = err
			return err
		}
	}
	return nil
}

// Frames returns how many frames have been written.
func (w *WAVWriter) Frames() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.frames
}

// Close flushes buffered samples, writes the final sizes into the header and
// closes the file. It is idempotent: later calls return the first call's
// result.
func (w *WAVWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.closeErr
	}
	w.closed = true
	err := w.err
	if err == nil {
		err = w.finish()
	}
	if cerr := w.f.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("audio: wav writer: close: %w", cerr))
	}
	w.closeErr = err
	return err
}

// finish flushes and rewrites the header with the final sizes.
func (w *WAVWriter) finish() error { return w.sync() }

// sync flushes the buffered samples, then rewrites the header with the
// sizes of what is now in the file. The order matters: a header never
// claims data that has not been handed to the kernel, so a process killed
// between the two writes leaves a file whose header describes less than
// is there, which readers accept. No fsync: the kernel's page cache
// survives the death of the process, which is the fault this guards.
func (w *WAVWriter) sync() error {
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("audio: wav writer: flush: %w", err)
	}
	w.hdr = wavHeader(w.rate, uint32(w.dataBytes))
	if _, err := w.f.WriteAt(w.hdr[:], 0); err != nil {
		return fmt.Errorf("audio: wav writer: header: %w", err)
	}
	w.syncedData = w.dataBytes
	return nil
}
