package sdp

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// key30 is a 30-octet key-salt, base64 (RFC 4568 §9.1's example key).
const key30 = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"

// srtpOffer is an RTP/SAVP offer with two crypto lines, as baresip or a
// desk phone sends it.
const srtpOffer = "v=0\r\n" +
	"o=alice 1 1 IN IP4 192.0.2.10\r\n" +
	"s=-\r\n" +
	"c=IN IP4 192.0.2.10\r\n" +
	"t=0 0\r\n" +
	"m=audio 49170 RTP/SAVP 0 101\r\n" +
	"a=rtpmap:101 telephone-event/8000\r\n" +
	"a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:" + key30 + key30 + "\r\n" +
	"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:" + key30 + "|2^20|1:4\r\n" +
	"a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^31\r\n"

func TestParseCrypto(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		value   string
		want    Crypto
		usable  bool
		wantErr string // part of the error, "" for none
	}{
		{name: "80 with lifetime", value: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^31",
			want: Crypto{Tag: 1, Suite: AESCM128HMACSHA180, Lifetime: "2^31"}, usable: true},
		{name: "32 plain", value: "7 AES_CM_128_HMAC_SHA1_32 inline:" + key30,
			want: Crypto{Tag: 7, Suite: AESCM128HMACSHA132}, usable: true},
		{name: "lifetime and mki", value: "2 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|1048576|1:4",
			want: Crypto{Tag: 2, Suite: AESCM128HMACSHA180, Lifetime: "1048576", MKI: "1:4"}},
		{name: "mki only", value: "2 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|12:2",
			want: Crypto{Tag: 2, Suite: AESCM128HMACSHA180, MKI: "12:2"}},
		{name: "session params", value: "3 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " UNENCRYPTED_SRTCP KDR=1",
			want: Crypto{Tag: 3, Suite: AESCM128HMACSHA180, Params: "UNENCRYPTED_SRTCP KDR=1"}},
		{name: "unknown suite kept", value: "4 F8_128_HMAC_SHA1_80 inline:QUJD",
			want: Crypto{Tag: 4, Suite: "F8_128_HMAC_SHA1_80"}},
		{name: "no key", value: "1 AES_CM_128_HMAC_SHA1_80", wantErr: "want <tag>"},
		{name: "tag not digits", value: "x AES_CM_128_HMAC_SHA1_80 inline:" + key30, wantErr: "tag"},
		{name: "tag too long", value: "1234567890 AES_CM_128_HMAC_SHA1_80 inline:" + key30, wantErr: "tag"},
		{name: "not inline", value: "1 AES_CM_128_HMAC_SHA1_80 uri:http://x", wantErr: "inline"},
		{name: "bad base64", value: "1 AES_CM_128_HMAC_SHA1_80 inline:!!!", wantErr: "base64"},
		{name: "short key", value: "1 AES_CM_128_HMAC_SHA1_80 inline:QUJD", wantErr: "3 octets"},
		{name: "two key params", value: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + ";inline:" + key30, wantErr: "key-param"},
		{name: "bad lifetime", value: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^x", wantErr: "lifetime"},
		{name: "mki before lifetime", value: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|1:4|2^20", wantErr: "lifetime"},
		{name: "mki length zero", value: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|1:0", wantErr: "lifetime or MKI"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseCrypto(tc.value)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrCrypto) || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrCrypto containing %q", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), "a=crypto:") {
					t.Fatalf("error %q does not name the attribute", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Tag != tc.want.Tag || got.Suite != tc.want.Suite || got.Lifetime != tc.want.Lifetime || got.MKI != tc.want.MKI || got.Params != tc.want.Params {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if got.Usable() != tc.usable {
				t.Fatalf("Usable = %v, want %v", got.Usable(), tc.usable)
			}
			back, err := ParseCrypto(got.String())
			if err != nil || back.String() != got.String() || !bytes.Equal(back.Key, got.Key) {
				t.Fatalf("round trip: %q -> %+v, %v", got.String(), back, err)
			}
		})
	}
}

func TestParseOfferCrypto(t *testing.T) {
	t.Parallel()
	o, err := ParseOffer([]byte(srtpOffer))
	if err != nil {
		t.Fatal(err)
	}
	if !o.Secure || len(o.Crypto) != 3 {
		t.Fatalf("secure %v, %d crypto lines, want RTP/SAVP with 3", o.Secure, len(o.Crypto))
	}
	c, ok := o.FirstUsable()
	if !ok || c.Tag != 3 || c.Suite != AESCM128HMACSHA180 {
		t.Fatalf("first usable = %+v %v, want tag 3 (the AES-256 and MKI lines are skipped)", c, ok)
	}
	for name, body := range map[string]string{
		"duplicate tag": strings.Replace(srtpOffer, "a=crypto:3", "a=crypto:2", 1),
		"bad key":       strings.Replace(srtpOffer, "|2^31", "|zz", 1),
		"savpf profile": strings.Replace(srtpOffer, "RTP/SAVP", "RTP/SAVPF", 1),
	} {
		if _, err := ParseOffer([]byte(body)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestSessionSRTP(t *testing.T) {
	t.Parallel()
	ours, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := ParseOffer([]byte(linphoneOffer))
	secure, _ := ParseOffer([]byte(srtpOffer))
	bestEffort, _ := ParseOffer([]byte(strings.Replace(srtpOffer, "RTP/SAVP", "RTP/AVP", 1)))
	noUsable, _ := ParseOffer([]byte(strings.Replace(srtpOffer, "a=crypto:3 AES_CM_128_HMAC_SHA1_80", "a=crypto:3 AES_192_CM_HMAC_SHA1_80", 1)))
	tests := []struct {
		name       string
		offer      *Offer
		mode       SRTPMode
		wantErr    error
		wantSecure bool // the answer's profile
		wantTag    uint32
	}{
		{name: "off, plain", offer: plain, mode: SRTPOff},
		{name: "off, savp refused", offer: secure, mode: SRTPOff, wantErr: ErrSRTPOff},
		{name: "unknown mode is off", offer: secure, mode: SRTPModeUnknown, wantErr: ErrSRTPOff},
		{name: "off ignores crypto on avp", offer: bestEffort, mode: SRTPOff},
		{name: "optional, plain", offer: plain, mode: SRTPOptional},
		{name: "optional, savp", offer: secure, mode: SRTPOptional, wantSecure: true, wantTag: 3},
		{name: "optional, best effort avp", offer: bestEffort, mode: SRTPOptional, wantTag: 3},
		{name: "required, plain refused", offer: plain, mode: SRTPRequired, wantErr: ErrSRTPRequired},
		{name: "required, savp", offer: secure, mode: SRTPRequired, wantSecure: true, wantTag: 3},
		{name: "required, no usable suite", offer: noUsable, mode: SRTPRequired, wantErr: ErrNoUsableCrypto},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := Local{Addr: netip.MustParseAddr("127.0.0.1"), Port: 30000, Codecs: []string{"PCMU", "PCMA"}, SRTP: tc.mode, Key: ours}
			body, a, err := NewSession(1).Answer(tc.offer, l)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseOffer(body)
			if err != nil {
				t.Fatalf("answer does not parse: %v\n%s", err, body)
			}
			if back.Secure != tc.wantSecure {
				t.Fatalf("answer secure = %v, want %v:\n%s", back.Secure, tc.wantSecure, body)
			}
			if tc.wantTag == 0 {
				if len(back.Crypto) != 0 || len(a.Crypto) != 0 {
					t.Fatalf("plain answer has crypto:\n%s", body)
				}
				return
			}
			if len(back.Crypto) != 1 || back.Crypto[0].Tag != tc.wantTag || back.Crypto[0].Suite != AESCM128HMACSHA180 || !bytes.Equal(back.Crypto[0].Key, ours) {
				t.Fatalf("answer crypto %+v, want tag %d, AES_CM_128_HMAC_SHA1_80, our key:\n%s", back.Crypto, tc.wantTag, body)
			}
			if bytes.Equal(back.Crypto[0].Key, tc.offer.Crypto[2].Key) {
				t.Fatal("answer reuses the offerer's key")
			}
		})
	}
}

func TestSessionOfferSRTP(t *testing.T) {
	t.Parallel()
	key, _ := NewKey()
	base := Local{Addr: netip.MustParseAddr("127.0.0.1"), Port: 30000, Codecs: []string{"PCMU"}, Key: key}
	for _, mode := range []SRTPMode{SRTPOff, SRTPOptional, SRTPRequired} {
		l := base
		l.SRTP = mode
		body, _, err := NewSession(1).Offer(l)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		o, err := ParseOffer(body)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		want := mode == SRTPRequired
		if o.Secure != want || (len(o.Crypto) == 2) != want {
			t.Fatalf("%s: offer secure %v with %d crypto lines:\n%s", mode, o.Secure, len(o.Crypto), body)
		}
		if want {
			if o.Crypto[0].Suite != AESCM128HMACSHA180 || o.Crypto[1].Suite != AESCM128HMACSHA132 || !bytes.Equal(o.Crypto[0].Key, key) {
				t.Fatalf("offer crypto %+v", o.Crypto)
			}
			if _, _, err := o.SRTPFor(SRTPRequired); err != nil {
				t.Fatalf("our own offer is not acceptable: %v", err)
			}
		}
	}
	l := base
	l.SRTP, l.Key = SRTPRequired, nil
	if _, _, err := NewSession(1).Offer(l); !errors.Is(err, ErrInvalid) {
		t.Fatalf("required without a key: err = %v", err)
	}
	if m, err := ParseSRTPMode("required"); err != nil || m != SRTPRequired || m.String() != "required" {
		t.Fatalf("ParseSRTPMode(required) = %v, %v", m, err)
	}
	if _, err := ParseSRTPMode("yes"); err == nil || !strings.Contains(err.Error(), `"yes"`) {
		t.Fatalf("ParseSRTPMode(yes) err = %v", err)
	}
}

func TestSessionRemote(t *testing.T) {
	t.Parallel()
	ours, _ := NewKey()
	theirs, _ := NewKey()
	answer := func(secure bool, cs ...Crypto) *Offer {
		return &Offer{Addr: netip.MustParseAddr("127.0.0.1"), Port: 4000, Codecs: []Codec{{PT: 0, Name: "PCMU", ClockRate: 8000}}, Secure: secure, Crypto: cs}
	}
	c80 := Crypto{Tag: 1, Suite: AESCM128HMACSHA180, Key: theirs}
	c32 := Crypto{Tag: 2, Suite: AESCM128HMACSHA132, Key: theirs}
	tests := []struct {
		name    string
		mode    SRTPMode
		answer  *Offer
		wantErr error
		wantTag uint32
	}{
		{name: "required, tag 2 32", mode: SRTPRequired, answer: answer(true, c32), wantTag: 2},
		{name: "required, tag 1 80", mode: SRTPRequired, answer: answer(true, c80), wantTag: 1},
		{name: "required, plain answer", mode: SRTPRequired, answer: answer(false), wantErr: ErrSRTPRequired},
		{name: "required, tag with the other suite", mode: SRTPRequired, answer: answer(true, Crypto{Tag: 1, Suite: AESCM128HMACSHA132, Key: theirs}), wantErr: ErrCrypto},
		{name: "required, two crypto", mode: SRTPRequired, answer: answer(true, c80, c32), wantErr: ErrCrypto},
		{name: "optional, plain", mode: SRTPOptional, answer: answer(false)},
		{name: "optional, crypto to our plain offer", mode: SRTPOptional, answer: answer(false, c80), wantErr: ErrCrypto},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := NewSession(1)
			if _, _, err := s.Offer(Local{Addr: netip.MustParseAddr("127.0.0.1"), Port: 1, Codecs: []string{"PCMU"}, SRTP: tc.mode, Key: ours}); err != nil {
				t.Fatal(err)
			}
			c, secure, err := s.Remote(tc.answer, tc.mode)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if secure != (tc.wantTag != 0) || c.Tag != tc.wantTag || (secure && !bytes.Equal(c.Key, theirs)) {
				t.Fatalf("Remote = %+v %v, want tag %d", c, secure, tc.wantTag)
			}
		})
	}
	// After our answer, Remote judges the far offer by the policy alone.
	s := NewSession(1)
	offer, _ := ParseOffer([]byte(srtpOffer))
	if _, _, err := s.Answer(offer, Local{Addr: netip.MustParseAddr("127.0.0.1"), Port: 1, Codecs: []string{"PCMU"}, SRTP: SRTPRequired, Key: ours}); err != nil {
		t.Fatal(err)
	}
	if c, ok, err := s.Remote(offer, SRTPRequired); err != nil || !ok || c.Tag != 3 {
		t.Fatalf("Remote after our answer = %+v %v %v, want the offer's tag 3", c, ok, err)
	}
}
