package codecs

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/zaf/g711"
)

// Benchmarks for one 20 ms G.711 frame (160 samples at 8000 Hz), the unit of
// work on the media path. "table" is this package's generated lookup path;
// "zaf-sample" calls zaf/g711's per-sample functions directly in a loop
// (inlinable, no allocation: the fairest comparison); "zaf-bytes" calls zaf/g711's
// []byte API, which allocates its output and needs little-endian bytes.
//
// Run: go test -run '^$' -bench . -benchmem ./codecs/

const benchFrame = 160

// benchPCM returns one frame of a two-tone signal spanning several
// companding segments, so the encoder sees realistic magnitudes.
func benchPCM() []int16 {
	pcm := make([]int16, benchFrame)
	for i := range pcm {
		x := 0.5*math.Sin(2*math.Pi*440*float64(i)/8000) + 0.3*math.Sin(2*math.Pi*1330*float64(i)/8000)
		pcm[i] = int16(x * 32767)
	}
	return pcm
}

func BenchmarkEncode(b *testing.B) {
	pcm := benchPCM()
	le := make([]byte, 2*len(pcm))
	for i, s := range pcm {
		binary.LittleEndian.PutUint16(le[2*i:], uint16(s))
	}
	for _, name := range []string{"PCMU", "PCMA"} {
		l := laws()[name]
		b.Run(name+"/table", func(b *testing.B) {
			b.ReportAllocs()
			dst := make([]byte, benchFrame)
			for b.Loop() {
				if _, err := l.codec.Encode(dst, pcm); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/encoder", func(b *testing.B) {
			// The per-call path the media engine takes (NewEncoder, then
			// Encode through the Encoder interface): must cost what
			// table does.
			b.ReportAllocs()
			enc, err := NewEncoder(l.codec)
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]byte, benchFrame)
			for b.Loop() {
				if _, err := enc.Encode(dst, pcm); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/zaf-sample", func(b *testing.B) {
			b.ReportAllocs()
			dst := make([]byte, benchFrame)
			for b.Loop() {
				if name == "PCMU" {
					for i, s := range pcm {
						dst[i] = g711.EncodeUlawFrame(s)
					}
				} else {
					for i, s := range pcm {
						dst[i] = g711.EncodeAlawFrame(s)
					}
				}
			}
		})
		b.Run(name+"/zaf-bytes", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = l.encodeLE(le)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	payload := make([]byte, benchFrame)
	for _, name := range []string{"PCMU", "PCMA"} {
		l := laws()[name]
		if _, err := l.codec.Encode(payload, benchPCM()); err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/table", func(b *testing.B) {
			b.ReportAllocs()
			dst := make([]int16, benchFrame)
			for b.Loop() {
				if _, err := l.codec.Decode(dst, payload); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/decoder", func(b *testing.B) {
			b.ReportAllocs()
			dec, err := NewDecoder(l.codec)
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]int16, benchFrame)
			for b.Loop() {
				if _, err := dec.Decode(dst, payload); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/zaf-sample", func(b *testing.B) {
			b.ReportAllocs()
			dst := make([]int16, benchFrame)
			for b.Loop() {
				if name == "PCMU" {
					for i, c := range payload {
						dst[i] = g711.DecodeUlawFrame(c)
					}
				} else {
					for i, c := range payload {
						dst[i] = g711.DecodeAlawFrame(c)
					}
				}
			}
		})
		b.Run(name+"/zaf-bytes", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = l.decodeLE(payload)
			}
		})
	}
}
