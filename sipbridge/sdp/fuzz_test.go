package sdp

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParseOffer checks that ParseOffer never panics and that every offer it
// accepts re-marshals to a body that parses to the same typed value.
// Seeds: testdata/fuzz/FuzzParseOffer.
func FuzzParseOffer(f *testing.F) {
	f.Add([]byte(linphoneOffer))
	f.Add([]byte(srtpOffer))
	f.Add([]byte(strings.Replace(srtpOffer, "RTP/SAVP", "RTP/AVP", 1)))
	f.Add([]byte(strings.Replace(srtpOffer, "|2^31", "|2^31|7:2 UNENCRYPTED_SRTCP", 1)))
	f.Add([]byte(rtcpBase + "a=rtcp:5005 IN IP4 198.51.100.7\r\na=rtcp-mux\r\n"))
	f.Add([]byte(rtcpBase + "a=rtcp:5005 IN IP6 2001:db8::7\r\n"))
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

// FuzzParseCrypto checks that ParseCrypto never panics, that what it
// accepts re-renders to a value that parses the same, and that a usable
// attribute has a key of the suite's length.
func FuzzParseCrypto(f *testing.F) {
	f.Add("1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^31")
	f.Add("2 AES_CM_128_HMAC_SHA1_32 inline:" + key30 + "|2^20|1:4 KDR=1")
	f.Add("9 F8_128_HMAC_SHA1_80 inline:QUJD|1:1")
	f.Add("1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + ";inline:" + key30)
	f.Fuzz(func(t *testing.T, v string) {
		c, err := ParseCrypto(v)
		if err != nil {
			return
		}
		back, err := ParseCrypto(c.String())
		if err != nil {
			t.Fatalf("re-rendered %q does not parse: %v", c.String(), err)
		}
		if !reflect.DeepEqual(c, back) {
			t.Fatalf("round trip changed the attribute:\n%+v\n%+v", c, back)
		}
		if c.Usable() && len(c.Key) != KeySaltLen {
			t.Fatalf("usable with a %d-octet key", len(c.Key))
		}
	})
}
