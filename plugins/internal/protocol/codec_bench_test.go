package protocol

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/baton-voice/baton/plugins/internal/pb/codecv1"
)

// BenchmarkBatchProto is the protobuf cost of one 500-frame batch of
// 20 ms G.711 frames (320 bytes of PCM each): marshal + unmarshal.
func BenchmarkBatchProto(b *testing.B) {
	batch := &codecv1.Batch{}
	data := make([]byte, 320)
	for i := range 500 {
		batch.Frames = append(batch.Frames, &codecv1.Frame{Op: codecv1.Op_OP_ENCODE, StateId: uint64(i), Seq: 7, Data: data})
	}
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		var err error
		buf, err = proto.MarshalOptions{}.MarshalAppend(buf[:0], batch)
		if err != nil {
			b.Fatal(err)
		}
		var out codecv1.Batch
		if err := proto.Unmarshal(buf, &out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/500, "ns/frame")
}
