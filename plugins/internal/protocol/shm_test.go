package protocol

import (
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"testing"

	"google.golang.org/grpc"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/plugins/internal/pb/codecv1"
)

// fakeFrames is a Frames stream fed from a list of batches.
type fakeFrames struct {
	grpc.ServerStream // nil: only Recv and Send are used
	in                []*codecv1.Batch
	out               []*codecv1.Batch
}

func (f *fakeFrames) Recv() (*codecv1.Batch, error) {
	if len(f.in) == 0 {
		return nil, io.EOF
	}
	b := f.in[0]
	f.in = f.in[1:]
	return b, nil
}

func (f *fakeFrames) Send(b *codecv1.Batch) error {
	c := &codecv1.Batch{Tick: b.Tick, Frames: slices.Clone(b.Frames)}
	if b.Shm != nil {
		c.Shm = &codecv1.Region{Offset: b.Shm.Offset, Length: b.Shm.Length}
	}
	f.out = append(f.out, c)
	return nil
}

// TestCodecServerSharedMemory: a batch whose frames are in the shared
// region is answered in the answer region the host gave (shm set, no
// frames), bit-exact with the in-process codec; an answer that does not
// fit there comes in frames.
func TestCodecServerSharedMemory(t *testing.T) {
	shm := make([]byte, 4096)
	pcm := make([]int16, 160)
	for i := range pcm {
		pcm[i] = int16(i*397 - 30000)
	}
	raw := make([]byte, 320)
	PCMToBytes(raw, pcm)
	req := AppendFrame(shm[:0], Frame{Op: codecv1.Op_OP_OPEN_ENCODER, StateID: 1, Data: []byte("PCMU")})
	req = AppendFrame(req, Frame{Op: codecv1.Op_OP_ENCODE, StateID: 1, Seq: 7, Data: raw})
	if !Aliases(req, shm) {
		t.Fatal("request not packed in place")
	}
	s := &CodecServer{Codecs: []codecs.Codec{codecs.PCMU()}, Shared: shm, Workers: 1}
	st := &fakeFrames{in: []*codecv1.Batch{
		{Tick: 1, Shm: &codecv1.Region{Offset: 0, Length: uint64(len(req))}, Answer: &codecv1.Region{Offset: 2048, Length: 2048}},
		// The same frame (state 1 is open now) with no room for its
		// answer (24 + 160 bytes) in 100 bytes.
		{Tick: 2, Shm: &codecv1.Region{Offset: uint64(len(req) - 344), Length: 344}, Answer: &codecv1.Region{Offset: 2048, Length: 100}},
	}}
	if err := s.Frames(st); err != nil {
		t.Fatal(err)
	}
	if len(st.out) != 2 {
		t.Fatalf("%d answers, want 2", len(st.out))
	}
	want := make([]byte, 160)
	n, _ := codecs.PCMU().Encode(want, pcm)
	a := st.out[0]
	if a.Shm == nil || a.Shm.Offset != 2048 || len(a.Frames) != 0 {
		t.Fatalf("answer 1: shm %v, %d bytes of frames: want it in the answer region", a.Shm, len(a.Frames))
	}
	b, err := RegionBytes(shm, a.Shm)
	if err != nil {
		t.Fatal(err)
	}
	if _, b, err = NextFrame(b); err != nil { // the open's result
		t.Fatal(err)
	}
	f, _, err := NextFrame(b)
	if err != nil || f.Err || f.Seq != 7 || !slices.Equal(f.Data, want[:n]) {
		t.Fatalf("encode answer %+v (%v), want %d PCMU bytes as in process", f, err, n)
	}
	if a := st.out[1]; a.Shm != nil || len(a.Frames) != 24+n {
		t.Fatalf("answer 2: shm %v, %d bytes of frames: want %d bytes in frames", a.Shm, len(a.Frames), 24+n)
	}
}

// TestCodecServerBadRegion: a region outside the mapping, or one with
// no mapping, ends the stream with an error naming it (ErrBadRegion).
func TestCodecServerBadRegion(t *testing.T) {
	for name, tc := range map[string]struct {
		shared []byte
		batch  *codecv1.Batch
	}{
		"past the end":     {make([]byte, 4096), &codecv1.Batch{Tick: 3, Shm: &codecv1.Region{Offset: 4000, Length: 200}}},
		"offset past":      {make([]byte, 4096), &codecv1.Batch{Tick: 3, Shm: &codecv1.Region{Offset: 5000}}},
		"wraps around":     {make([]byte, 4096), &codecv1.Batch{Tick: 3, Shm: &codecv1.Region{Offset: 8, Length: ^uint64(0)}}},
		"answer past":      {make([]byte, 4096), &codecv1.Batch{Tick: 3, Answer: &codecv1.Region{Offset: 2048, Length: 4096}}},
		"no shared memory": {nil, &codecv1.Batch{Tick: 3, Shm: &codecv1.Region{Length: 24}}},
	} {
		t.Run(name, func(t *testing.T) {
			s := &CodecServer{Codecs: []codecs.Codec{codecs.PCMU()}, Shared: tc.shared}
			err := s.Frames(&fakeFrames{in: []*codecv1.Batch{tc.batch}})
			if !errors.Is(err, ErrBadRegion) {
				t.Fatalf("err %v, want ErrBadRegion", err)
			}
			t.Log(err)
		})
	}
}

// TestPCMBytes: the wire's PCM is signed 16-bit little-endian whatever
// the machine, both ways.
func TestPCMBytes(t *testing.T) {
	pcm := []int16{0, 1, -1, 32767, -32768, 0x1234, -0x1234}
	b := make([]byte, 2*len(pcm))
	PCMToBytes(b, pcm)
	for i, s := range pcm {
		if got := int16(binary.LittleEndian.Uint16(b[2*i:])); got != s {
			t.Fatalf("sample %d: wire has %d, want %d", i, got, s)
		}
	}
	back := make([]int16, len(pcm))
	PCMFromBytes(back, append(b, 0x55)) // an odd byte more is ignored
	if !slices.Equal(back, pcm) {
		t.Fatalf("round trip %v, want %v", back, pcm)
	}
}
