package presenceredis

import (
	"testing"
)

// FuzzDecodeEvent: any message either fails with ErrBadValue or decodes to
// a valid entry that survives encode/decode unchanged.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{
		"alice|laptop|2|1700000000000000000|127.0.0.1:5000",
		"alice|laptop|1|0|",
		"bob|desk|3|5|[::1]:7000",
		"alice|laptop|9|0|",
		"alice||2|0|",
		"|||",
		"alice|laptop|2|-1|",
		"alice|laptop|2|+5|1.2.3.4:0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		e, err := decodeEvent(msg)
		if err != nil {
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("decoded an invalid entry from %q: %v", msg, err)
		}
		again, err := decodeEvent(encodeEvent(e))
		if err != nil {
			t.Fatalf("re-decoding %q (from %q): %v", encodeEvent(e), msg, err)
		}
		if again != e {
			t.Fatalf("round trip of %q: %+v, then %+v", msg, e, again)
		}
	})
}
