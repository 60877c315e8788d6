package sdp

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

const rtcpBase = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"

// RFC 3605 a=rtcp and RFC 5761 a=rtcp-mux: parsed, where RTCP goes, and
// what is refused.
func TestParseRTCPAttributes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		attrs string
		dest  string // RTCPDest, "" for invalid
		bad   bool
	}{
		{name: "none: RTP port + 1", dest: "192.0.2.1:4001"},
		{name: "port", attrs: "a=rtcp:5005\r\n", dest: "192.0.2.1:5005"},
		{name: "port and address", attrs: "a=rtcp:5005 IN IP4 198.51.100.7\r\n", dest: "198.51.100.7:5005"},
		{name: "mux", attrs: "a=rtcp-mux\r\n", dest: "192.0.2.1:4000"},
		{name: "mux wins over a=rtcp", attrs: "a=rtcp:5005\r\na=rtcp-mux\r\n", dest: "192.0.2.1:4000"},
		{name: "port 0", attrs: "a=rtcp:0\r\n", bad: true},
		{name: "port too big", attrs: "a=rtcp:65536\r\n", bad: true},
		{name: "leading zero", attrs: "a=rtcp:05005\r\n", bad: true},
		{name: "not a number", attrs: "a=rtcp:x\r\n", bad: true},
		{name: "two fields", attrs: "a=rtcp:5005 IN\r\n", bad: true},
		{name: "IP4 with an IPv6 address", attrs: "a=rtcp:5005 IN IP4 2001:db8::1\r\n", bad: true},
		{name: "twice", attrs: "a=rtcp:5005\r\na=rtcp:5007\r\n", bad: true},
		{name: "mux with a value", attrs: "a=rtcp-mux:yes\r\n", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, err := ParseOffer([]byte(rtcpBase + tc.attrs))
			if tc.bad {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("ParseOffer(%q) = %v, want ErrInvalid", tc.attrs, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := o.RTCPDest(); got.String() != tc.dest {
				t.Errorf("RTCPDest = %s, want %s", got, tc.dest)
			}
		})
	}
}

// Our offer carries rtcp-mux and, as its fallback, a=rtcp with our RTCP
// port; the answer to an offer with rtcp-mux multiplexes (no a=rtcp), to
// one without it names our RTCP port.
func TestOfferAnswerRTCP(t *testing.T) {
	t.Parallel()
	l := Local{Addr: netip.MustParseAddr("192.0.2.9"), Port: 6000, RTCPPort: 6123, RTCPMux: true, Codecs: []string{"PCMU"}}
	body, o, err := NewSession(1).Offer(l)
	if err != nil {
		t.Fatal(err)
	}
	if !o.RTCPMux || o.RTCPPort != 6123 || !strings.Contains(string(body), "a=rtcp:6123\r\n") || !strings.Contains(string(body), "a=rtcp-mux\r\n") {
		t.Fatalf("offer:\n%s", body)
	}
	for _, tc := range []struct {
		name     string
		attrs    string
		mux      bool
		rtcpPort int
	}{
		{name: "offer with rtcp-mux", attrs: "a=rtcp-mux\r\n", mux: true},
		{name: "offer without", rtcpPort: 6123},
	} {
		offer, err := ParseOffer([]byte(rtcpBase + tc.attrs))
		if err != nil {
			t.Fatal(err)
		}
		_, a, err := NewSession(2).Answer(offer, l)
		if err != nil {
			t.Fatal(err)
		}
		if a.RTCPMux != tc.mux || a.RTCPPort != tc.rtcpPort {
			t.Errorf("%s: answer rtcp-mux %v a=rtcp %d, want %v %d", tc.name, a.RTCPMux, a.RTCPPort, tc.mux, tc.rtcpPort)
		}
	}
	// Our RTCP on RTP+1 needs no a=rtcp.
	l.RTCPPort, l.RTCPMux = 6001, false
	if _, o, _ := NewSession(3).Offer(l); o.RTCPPort != 0 || o.RTCPMux {
		t.Errorf("offer with RTCP on port+1 has a=rtcp %d mux %v", o.RTCPPort, o.RTCPMux)
	}
}
