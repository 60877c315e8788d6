package sdp

import (
	"reflect"
	"testing"
)

// FuzzParseOffer checks that ParseOffer never panics and that every offer it
// accepts re-marshals to a body that parses to the same typed value.
// Seeds: testdata/fuzz/FuzzParseOffer.
func FuzzParseOffer(f *testing.F) {
	f.Add([]byte(linphoneOffer))
	f.Fuzz(func(t *testing.T, body []byte) {
		o, err := ParseOffer(body)
		if err != nil {
			return
		}
		out, err := o.Marshal()
		if err != nil {
			t.Fatalf("parsed offer does not marshal: %v\n%+v", err, o)
		}
		back, err := ParseOffer(out)
		if err != nil {
			t.Fatalf("re-marshalled offer does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(o, back) {
			t.Fatalf("round trip changed the offer:\n%+v\n%+v\n%s", o, back, out)
		}
	})
}
