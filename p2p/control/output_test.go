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
		{"handoff", func() error { return PrintHandoff(failWriter{}, sampleHandoff()) }},
		{"handoffs", func() error { return PrintHandoffs(failWriter{}, []endpoint.HandoffInfo{sampleHandoff()}) }},
		{"no handoffs", func() error { return PrintHandoffs(failWriter{}, nil) }},
		{"sessions", func() error { return PrintSessions(failWriter{}, []endpoint.SessionInfo{{CallID: "c"}}) }},
		{"no sessions", func() error { return PrintSessions(failWriter{}, nil) }},
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

func TestPrintHandoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		info endpoint.HandoffInfo
		want string
	}{
		{"twelve steps", sampleHandoff(), "" +
			"h-3f9a0c1d2e4b  pull  alice/desk -> this endpoint  call c-00c1b475ad2d9629  peer bob/mobile  done  at 08:14:10.200\n" +
			"  step  1     before  A logs in: logged in to 127.0.0.1:7000 (at 08:12:01.123)\n" +
			"  step  2   +0.05 ms  B's presence, then a query to B: alice/desk is online at 127.0.0.3:5070; session query sent directly to it\n" +
			"  step  3   +1.42 ms  B answers with session parameters: session c-00c1b475ad2d9629 with bob/mobile, two-way audio, PCMU\n" +
			"  step  4   +1.80 ms  A sends audio to C: audio from 127.0.0.2:41000 (ssrc 5a3c9e01) to bob/mobile at 127.0.0.7:40002\n" +
			"  step  5   +2.31 ms  A tells B to stop its audio: alice/desk stopped sending audio to bob/mobile\n" +
			"  step  6  +62.40 ms  no audio from C reaches A: no audio from bob/mobile within 60ms of step 5 (0 packets)\n" +
			"  step  7  +64.02 ms  A re-establishes with C out of band: bob/mobile accepted this endpoint as its peer (grant verified)\n" +
			"  step  8  +64.10 ms  A closes its provisional session silently: provisional media 127.0.0.2:41000 closed; no termination signal sent\n" +
			"  step  9  +64.31 ms  A obtains a new address: media now on 127.0.0.2:41002\n" +
			"  step 10  +64.35 ms  A restarts audio on it: audio restarted from 127.0.0.2:41002 (ssrc 9b1e44d7)\n" +
			"  step 11  +65.12 ms  A sends the new address to C: bob/mobile sends to 127.0.0.2:41002\n" +
			"  step 12  +81.59 ms  C's audio on the new address, B released: audio from bob/mobile on 127.0.0.2:41002; alice/desk released\n" +
			"first audio from bob/mobile after 81.59 ms\n" +
			"media now on 127.0.0.2:41002\n"},
		{"rolled back", sampleRolledBack(), "" +
			"h-77d0e2a91c05  pull  alice/desk -> this endpoint  call c-00c1b475ad2d9629  peer bob/mobile  rolled-back  at 08:14:10.200\n" +
			"  step  1     before  A logs in: logged in to 127.0.0.1:7000 (at 08:12:01.123)\n" +
			"  step  2   +0.05 ms  B's presence, then a query to B: alice/desk is online at 127.0.0.3:5070; session query sent directly to it\n" +
			"  step  3   +1.42 ms  B answers with session parameters: session c-00c1b475ad2d9629 with bob/mobile, two-way audio, PCMU\n" +
			"  step  4   +1.80 ms  A sends audio to C: audio from 127.0.0.2:41000 (ssrc 5a3c9e01) to bob/mobile at 127.0.0.7:40002\n" +
			"  step  5   +2.31 ms  A tells B to stop its audio: alice/desk stopped sending audio to bob/mobile\n" +
			"  step  6  +62.40 ms  no audio from C reaches A: no audio from bob/mobile within 60ms of step 5 (0 packets)\n" +
			"error: endpoint: handoff failed: rolled back: bob/mobile refused: endpoint: handoff grant refused: expired\n"},
		{"rebind", sampleRebind(), "" +
			"h-a81c3e5f0d92  rebind  call c-00c1b475ad2d9629  peer bob/mobile  done  at 08:20:00.000\n" +
			"  step  8   +0.12 ms  close the media session silently: media 127.0.0.2:41002 closed; no termination signal sent\n" +
			"  step  9   +0.41 ms  obtain a new address: media now on 127.0.0.7:41004\n" +
			"  step 10   +0.45 ms  restart audio on it: audio restarted from 127.0.0.7:41004 (ssrc 0c44e1f2)\n" +
			"  step 11   +1.23 ms  send the new address to the peer: bob/mobile sends to 127.0.0.7:41004\n" +
			"  step 12  +21.07 ms  the peer's audio on the new address: audio from bob/mobile on 127.0.0.7:41004\n" +
			"first audio from bob/mobile after 21.07 ms\n" +
			"media now on 127.0.0.7:41004\n"},
		{"failed before any step", endpoint.HandoffInfo{ID: "h-1", Kind: "pull", State: "failed", Error: "endpoint: peer is busy: alice/laptop is already in a call"}, "" +
			"h-1  pull  failed\n" +
			"error: endpoint: peer is busy: alice/laptop is already in a call\n"},
		{"step without title, audio without peer", endpoint.HandoffInfo{ID: "h-2", Kind: "pull", State: "done",
			Steps: []endpoint.StepInfo{{Step: 12, SinceStartMS: 1234.5, Detail: "audio"}, {Step: 3, Title: "B answers"}}, FirstAudioMS: 0.5}, "" +
			"h-2  pull  done\n" +
			"  step 12  +1234.50 ms  audio\n" +
			"  step  3     +0.00 ms  B answers\n" +
			"first audio from C after 0.50 ms\n"},
		{"empty", endpoint.HandoffInfo{}, "-  -  -\n"},
		{"control characters", endpoint.HandoffInfo{ID: "h\n3", Kind: "pull", From: "alice/\x1b[2Jdesk", CallID: "c\t1", Peer: "bob\r", State: "done",
			Steps: []endpoint.StepInfo{{Step: 4, Title: "A sends\naudio", Detail: "to\u0085C"}}, NewAddress: "127.0.0.2:1\n", Error: "x\ny"}, "" +
			"h?3  pull  alice/?[2Jdesk -> this endpoint  call c?1  peer bob?  done\n" +
			"  step  4  +0.00 ms  A sends?audio: to?C\n" +
			"media now on 127.0.0.2:1?\n" +
			"error: x?y\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := PrintHandoff(&b, tc.info); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Fatalf("got:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestPrintHandoffs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		list []endpoint.HandoffInfo
		want string
	}{
		{"none", nil, "no handoffs\n"},
		{"two, a blank line between", []endpoint.HandoffInfo{
			{ID: "h-1", Kind: "pull", State: "failed", Error: "nothing to pull"},
			{ID: "h-2", Kind: "rebind", State: "done", NewAddress: "127.0.0.7:41004"},
		}, "" +
			"h-1  pull  failed\n" +
			"error: nothing to pull\n" +
			"\n" +
			"h-2  rebind  done\n" +
			"media now on 127.0.0.7:41004\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := PrintHandoffs(&b, tc.list); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Fatalf("got:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestPrintSessions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		sessions []endpoint.SessionInfo
		want     string
	}{
		{"none", nil, "no sessions\n"},
		{"two", []endpoint.SessionInfo{
			{CallID: "c-00c1b475ad2d9629", Peer: "bob/mobile", Direction: "sendrecv", Codec: "PCMU", PeerMedia: "127.0.0.7:40002"},
			{CallID: "c-2", Peer: "carol/desk\t\x1b", Direction: "sendrecv", Codec: "PCMA"},
		}, "" +
			"CALL ID             PEER          DIRECTION  CODEC  PEER MEDIA\n" +
			"c-00c1b475ad2d9629  bob/mobile    sendrecv   PCMU   127.0.0.7:40002\n" +
			"c-2                 carol/desk??  sendrecv   PCMA   -\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := PrintSessions(&b, tc.sessions); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Fatalf("got:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}
