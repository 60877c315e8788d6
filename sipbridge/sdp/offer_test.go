package sdp

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

const linphoneOffer = "v=0\r\n" +
	"o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n" +
	"s=-\r\n" +
	"c=IN IP4 192.0.2.10\r\n" +
	"t=0 0\r\n" +
	"m=audio 49170 RTP/AVP 8 0 101\r\n" +
	"a=rtpmap:8 PCMA/8000\r\n" +
	"a=rtpmap:101 telephone-event/8000\r\n" +
	"a=fmtp:101 0-15\r\n" +
	"a=ptime:20\r\n"

func TestParseOffer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		want    *Offer
		wantErr error
	}{
		{
			name: "pcma pcmu dtmf, static pt without rtpmap",
			body: linphoneOffer,
			want: &Offer{
				SessionID: 2890844526, SessionVersion: 2890844526,
				Addr: netip.MustParseAddr("192.0.2.10"), Port: 49170,
				Codecs: []Codec{
					{PT: 8, Name: "PCMA", ClockRate: 8000},
					{PT: 0, Name: "PCMU", ClockRate: 8000},
					{PT: 101, Name: "telephone-event", ClockRate: 8000, Fmtp: "0-15"},
				},
				PTime: 20, TelephoneEventPT: 101, Direction: SendRecv,
			},
		},
		{
			name: "media-level c= and sendonly hold",
			body: "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n" +
				"m=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\na=sendonly\r\n",
			want: &Offer{SessionID: 1, SessionVersion: 2, Addr: netip.MustParseAddr("10.0.0.2"), Port: 4000,
				Codecs: []Codec{{PT: 0, Name: "PCMU", ClockRate: 8000}}, TelephoneEventPT: -1, Direction: SendOnly},
		},
		{
			name: "session-level inactive, opus stereo",
			body: "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\na=inactive\r\n" +
				"m=audio 4000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n",
			want: &Offer{SessionID: 1, SessionVersion: 1, Addr: netip.MustParseAddr("::1"), Port: 4000,
				Codecs: []Codec{{PT: 111, Name: "opus", ClockRate: 48000, Channels: 2}}, TelephoneEventPT: -1, Direction: Inactive},
		},
		{
			name:    "video only",
			body:    "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=video 4000 RTP/AVP 96\r\n",
			wantErr: ErrNoAudio,
		},
		{
			name:    "no connection line",
			body:    "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
			wantErr: ErrInvalid,
		},
		{
			name:    "hostname as address",
			body:    "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 example.com\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
			wantErr: ErrInvalid,
		},
		{
			name:    "payload type out of range",
			body:    "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 200\r\n",
			wantErr: ErrInvalid,
		},
		{
			name:    "garbage",
			body:    "hello",
			wantErr: ErrInvalid,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseOffer([]byte(tc.body))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestAnswerDirection(t *testing.T) {
	t.Parallel()
	all := []Direction{SendRecv, SendOnly, RecvOnly, Inactive}
	// want[offered][local], RFC 3264 §6.1.
	want := map[Direction]map[Direction]Direction{
		SendRecv: {SendRecv: SendRecv, SendOnly: SendOnly, RecvOnly: RecvOnly, Inactive: Inactive},
		SendOnly: {SendRecv: RecvOnly, SendOnly: Inactive, RecvOnly: RecvOnly, Inactive: Inactive},
		RecvOnly: {SendRecv: SendOnly, SendOnly: SendOnly, RecvOnly: Inactive, Inactive: Inactive},
		Inactive: {SendRecv: Inactive, SendOnly: Inactive, RecvOnly: Inactive, Inactive: Inactive},
	}
	for _, o := range all {
		for _, l := range all {
			if got := AnswerDirection(o, l); got != want[o][l] {
				t.Errorf("AnswerDirection(%s, %s) = %s, want %s", o, l, got, want[o][l])
			}
		}
	}
	if got := AnswerDirection(DirectionUnknown, DirectionUnknown); got != SendRecv {
		t.Errorf("unknown/unknown = %s, want sendrecv", got)
	}
}

func TestSessionAnswer(t *testing.T) {
	t.Parallel()
	offer, err := ParseOffer([]byte(linphoneOffer))
	if err != nil {
		t.Fatal(err)
	}
	local := Local{Addr: netip.MustParseAddr("127.0.0.1"), Port: 30000, PTime: 20, DTMF: true}
	tests := []struct {
		name     string
		prefs    []string
		wantPT   uint8
		wantName string
		wantErr  error
	}{
		{name: "our first preference wins over offer order", prefs: []string{"PCMU", "PCMA"}, wantPT: 0, wantName: "PCMU"},
		{name: "skip codecs the offer lacks", prefs: []string{"G722", "pcma"}, wantPT: 8, wantName: "PCMA"},
		{name: "none in common", prefs: []string{"G722", "opus"}, wantErr: ErrNoCommonCodec},
		{name: "telephone-event is not an audio codec", prefs: []string{"telephone-event"}, wantErr: ErrNoCommonCodec},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := local
			l.Codecs = tc.prefs
			body, a, err := NewSession(7).Answer(offer, l)
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
			if !reflect.DeepEqual(back, a) {
				t.Fatalf("answer body %+v, returned %+v", back, a)
			}
			if back.Codecs[0].PT != tc.wantPT || back.Codecs[0].Name != tc.wantName {
				t.Fatalf("chosen %+v, want %d %s", back.Codecs[0], tc.wantPT, tc.wantName)
			}
			if back.TelephoneEventPT != 101 || back.PTime != 20 || back.Port != 30000 {
				t.Fatalf("answer %+v: want telephone-event 101, ptime 20, port 30000", back)
			}
		})
	}
}

func TestSessionVersionAndHold(t *testing.T) {
	t.Parallel()
	s := NewSession(42)
	l := Local{Addr: netip.MustParseAddr("127.0.0.1"), Port: 30000, Codecs: []string{"PCMU", "PCMA"}, DTMF: true}
	steps := []struct {
		name    string
		dir     Direction
		wantVer uint64
		wantDir Direction
	}{
		{"initial offer", SendRecv, 1, SendRecv},
		{"same offer again keeps version", SendRecv, 1, SendRecv},
		{"hold", SendOnly, 2, SendOnly},
		{"hold repeated", SendOnly, 2, SendOnly},
		{"resume", SendRecv, 3, SendRecv},
	}
	for _, st := range steps {
		l.Direction = st.dir
		body, _, err := s.Offer(l)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		o, err := ParseOffer(body)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if o.SessionID != 42 || o.SessionVersion != st.wantVer || o.Direction != st.wantDir {
			t.Fatalf("%s: id %d version %d direction %s, want 42 %d %s", st.name, o.SessionID, o.SessionVersion, o.Direction, st.wantVer, st.wantDir)
		}
		if !strings.Contains(string(body), "a="+st.wantDir.String()) {
			t.Fatalf("%s: body lacks a=%s:\n%s", st.name, st.wantDir, body)
		}
	}
	if _, _, err := s.Offer(Local{Addr: l.Addr, Codecs: []string{"nope"}}); !errors.Is(err, ErrUnknownCodec) {
		t.Fatalf("unknown codec: err = %v", err)
	}
}

func TestAnswerToHoldIsRecvOnly(t *testing.T) {
	t.Parallel()
	held := strings.Replace(linphoneOffer, "a=ptime:20\r\n", "a=ptime:20\r\na=sendonly\r\n", 1)
	offer, err := ParseOffer([]byte(held))
	if err != nil {
		t.Fatal(err)
	}
	if !offer.Held() {
		t.Fatal("sendonly offer not Held")
	}
	_, a, err := NewSession(1).Answer(offer, Local{Addr: netip.MustParseAddr("127.0.0.1"), Port: 1, Codecs: []string{"PCMA"}})
	if err != nil {
		t.Fatal(err)
	}
	if a.Direction != RecvOnly {
		t.Fatalf("answer to hold = %s, want recvonly", a.Direction)
	}
}
