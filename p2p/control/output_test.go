package control

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/endpoint"
)

func TestPrintCalls(t *testing.T) {
	t.Parallel()
	started := time.Date(2025, 1, 2, 8, 12, 1, 0, time.UTC)
	tests := []struct {
		name  string
		calls []endpoint.CallInfo
		want  string
	}{
		{"none", nil, "no calls\n"},
		{"two", []endpoint.CallInfo{
			{ID: "c-1f2e", Direction: "outgoing", Peer: "bob/mobile", State: "active", Codec: "PCMU", SRTP: true,
				RemoteMedia: "127.0.0.7:40002", Started: started,
				Media: &endpoint.MediaInfo{PacketsSent: 100, PacketsReceived: 98, Lost: 2, JitterMS: 1.5}},
			{ID: "c-2", Direction: "incoming", Peer: "carol/desk", State: "ended", EndReason: "remote hangup"},
		}, "" +
			"ID      DIR  PEER        STATE   CODEC  SRTP  REMOTE MEDIA     STARTED   INFO\n" +
			"c-1f2e  out  bob/mobile  active  PCMU   yes   127.0.0.7:40002  08:12:01  sent=100 recv=98 lost=2 jitter=1.5ms\n" +
			"c-2     in   carol/desk  ended   -      no    -                -         remote hangup\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := PrintCalls(&b, tc.calls); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Fatalf("got:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestPrintBuddies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		buddies []endpoint.BuddyInfo
		want    string
	}{
		{"none", nil, "no buddies\n"},
		{"some", newFake().buddies, "" +
			"BUDDY         STATUS  SIGNAL\n" +
			"alice/desk *  online  127.0.0.3:5070\n" +
			"bob/mobile    online  127.0.0.7:5070\n"},
		{"no devices known", []endpoint.BuddyInfo{{User: "dave", Status: "offline"}}, "" +
			"BUDDY  STATUS   SIGNAL\n" +
			"dave   offline  -\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := PrintBuddies(&b, tc.buddies); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Fatalf("got:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestPrintEvent(t *testing.T) {
	t.Parallel()
	want := []string{
		"08:12:01.123  login         access=127.0.0.1:7000",
		"08:12:01.124  presence      -                   alice/desk        online",
		"08:12:01.125  call.dialing  c-1f2e              bob/mobile",
		"08:12:01.126  call.ringing  c-1f2e              bob/mobile",
		"08:12:01.127  call.active   c-1f2e              bob/mobile        codec=PCMU",
		"08:12:01.128  handoff.step  c-1f2e              alice/desk        step=5 stop audio to C",
		"08:12:01.129  media.rebind  c-1f2e              -                 127.0.0.2:40000 -> 127.0.0.7:40002",
		"08:12:01.130  call.ended    c-1f2e              bob/mobile        remote hangup",
		"08:12:01.131  logout        closed",
	}
	for i, ev := range sampleEvents() {
		var b bytes.Buffer
		if err := PrintEvent(&b, ev); err != nil {
			t.Fatal(err)
		}
		if got := b.String(); got != want[i]+"\n" {
			t.Errorf("event %d:\ngot  %q\nwant %q", i, got, want[i]+"\n")
		}
	}
}

// failWriter fails every write, like a closed pipe.
type failWriter struct{}

var errPipe = errors.New("broken pipe")

func (failWriter) Write([]byte) (int, error) { return 0, errPipe }

func TestPrintWriteErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func() error
	}{
		{"calls", func() error { return PrintCalls(failWriter{}, []endpoint.CallInfo{{ID: "c"}}) }},
		{"no calls", func() error { return PrintCalls(failWriter{}, nil) }},
		{"buddies", func() error { return PrintBuddies(failWriter{}, []endpoint.BuddyInfo{{User: "b"}}) }},
		{"event", func() error { return PrintEvent(failWriter{}, endpoint.Event{Type: "login"}) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.run(); !errors.Is(err, errPipe) {
				t.Fatalf("err = %v, want the writer's error", err)
			}
		})
	}
}

func TestPrintEventOneLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ev   endpoint.Event
		want string
	}{
		{"empty", endpoint.Event{}, "-\n"},
		{"control characters", endpoint.Event{Type: "call.ended", CallID: "c\t1", Peer: "bob\n", Detail: "a\nb\x1b[31mred\u0085"},
			"-  call.ended    c?1                 bob?              a?b?[31mred?\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := PrintEvent(&b, tc.ev); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Fatalf("got %q, want %q", b.String(), tc.want)
			}
			if strings.Count(b.String(), "\n") != 1 {
				t.Fatal("an event must print as exactly one line")
			}
		})
	}
}
