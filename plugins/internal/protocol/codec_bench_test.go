package protocol

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/baton-voice/baton/plugins/internal/pb/codecv1"
)

// BenchmarkBatchProto is the wire cost of one 500-frame batch of 20 ms
// G.711 frames (320 bytes of PCM each): pack, marshal, unmarshal, unpack.
func BenchmarkBatchProto(b *testing.B) {
	data := make([]byte, 320)
	var packed []byte
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		packed = packed[:0]
		for i := range 500 {
			packed = AppendFrame(packed, Frame{Op: codecv1.Op_OP_ENCODE, StateID: uint64(i), Seq: 7, Data: data})
		}
		var err error
		buf, err = proto.MarshalOptions{}.MarshalAppend(buf[:0], &codecv1.Batch{Tick: 1, Frames: packed})
		if err != nil {
			b.Fatal(err)
		}
		var out codecv1.Batch
		if err := proto.Unmarshal(buf, &out); err != nil {
			b.Fatal(err)
		}
		for r := out.GetFrames(); len(r) > 0; {
			if _, r, err = NextFrame(r); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/500, "ns/frame")
}
