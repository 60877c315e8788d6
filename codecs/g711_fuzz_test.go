package codecs

import (
	"encoding/binary"
	"testing"
)

// FuzzDecode checks that any payload decodes, with either law, into exactly
// one sample per byte and without panicking, and that each sample is the
// reference value for its code.
// Seeds: testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte) {
		for name, l := range laws() {
			dst := make([]int16, len(payload))
			n, err := l.codec.Decode(dst, payload)
			if err != nil || n != len(payload) {
				t.Fatalf("%s: Decode(%d bytes) = %d, %v; want %d, nil", name, len(payload), n, err, len(payload))
			}
			for i, c := range payload {
				if want := l.decode(c); dst[i] != want {
					t.Fatalf("%s: code %#02x decoded to %d, zaf/g711 says %d", name, c, dst[i], want)
				}
			}
		}
	})
}

// FuzzRoundTrip reads the input as little-endian 16-bit PCM (a trailing odd
// byte is ignored) and checks decode(encode(x)) against zaf/g711's
// decode(encode(x)) sample by sample, for both laws.
// Seeds: testdata/fuzz/FuzzRoundTrip.
func FuzzRoundTrip(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte) {
		pcm := make([]int16, len(raw)/2)
		for i := range pcm {
			pcm[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		for name, l := range laws() {
			enc := make([]byte, len(pcm))
			if n, err := l.codec.Encode(enc, pcm); err != nil || n != len(pcm) {
				t.Fatalf("%s: Encode = %d, %v; want %d, nil", name, n, err, len(pcm))
			}
			dec := make([]int16, len(enc))
			if n, err := l.codec.Decode(dec, enc); err != nil || n != len(enc) {
				t.Fatalf("%s: Decode = %d, %v; want %d, nil", name, n, err, len(enc))
			}
			for i, x := range pcm {
				if want := l.decode(l.encode(x)); dec[i] != want {
					t.Fatalf("%s: sample %d round-tripped to %d, zaf/g711 gives %d", name, x, dec[i], want)
				}
			}
		}
	})
}
