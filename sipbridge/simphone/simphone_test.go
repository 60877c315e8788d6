package simphone

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/audio"
)

// Two phones call each other directly (the callee stands in for the
// gateway): the callee answers at once, each hears the other's tone, and
// the caller's BYE ends the call on both sides.
func TestPhoneToPhone(t *testing.T) {
	t.Parallel()
	ip := netip.MustParseAddr("127.0.0.1")
	callee, err := Start(Config{User: "carol", Gateway: "127.0.0.1:9", IP: ip, Tone: 660, AutoAnswer: true})
	if err != nil {
		t.Fatal(err)
	}
	defer callee.Close()
	caller, err := Start(Config{User: "alice", Gateway: callee.Addr().String(), IP: ip, Tone: 440})
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	out, err := caller.Call(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	var in *Call
	select {
	case in = <-callee.Incoming():
	case <-ctx.Done():
		t.Fatal("the callee never answered")
	}
	if in.Peer != "alice" {
		t.Errorf("the callee sees the call from %q, want alice", in.Peer)
	}
	for len(out.Heard()) < 8000 || len(in.Heard()) < 8000 {
		select {
		case <-ctx.Done():
			t.Fatalf("a second of audio never arrived: caller heard %d samples, callee %d", len(out.Heard()), len(in.Heard()))
		case <-time.After(50 * time.Millisecond):
		}
	}
	if hz := audio.DominantFrequency(out.Heard(), 8000, []float64{440, 660}); hz != 660 {
		t.Errorf("the caller heard %v Hz, want 660", hz)
	}
	if hz := audio.DominantFrequency(in.Heard(), 8000, []float64{440, 660}); hz != 440 {
		t.Errorf("the callee heard %v Hz, want 440", hz)
	}
	// What the caller heard, from its arrival log: one SSRC, nothing
	// lost, the callee's tone in every full second.
	rep := out.Report(out.Received()[0].At, time.Now(), []float64{440, 660})
	t.Logf("the caller's report: %s", rep)
	if rep.Packets < 40 || rep.SSRCs != 1 || rep.Lost != 0 || rep.TSJumps != 0 {
		t.Errorf("the caller's report %s: want >= 40 packets, 1 SSRC, 0 lost, 0 timestamp jumps", rep)
	}
	if len(rep.Tones) == 0 || rep.Tones[0] != 660 {
		t.Errorf("the caller's tones per second %v, want 660 first", rep.Tones)
	}
	// The callee has no REFER handler: the transfer is refused, and the
	// error says so.
	if code, err := out.Refer(ctx, "bob"); !errors.Is(err, ErrTransfer) || code < 400 {
		t.Errorf("REFER to a phone that does not take it: %d, %v; want a 4xx/5xx and ErrTransfer", code, err)
	}
	if err := out.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Call{out, in} {
		select {
		case <-c.Ended():
		case <-ctx.Done():
			t.Fatal("a side of the call never ended after BYE")
		}
	}
	// Each phone's trace holds every message of the call, in time order,
	// seen from its side.
	var got []string
	tr := caller.Trace()
	for i, m := range tr {
		dir := "<-"
		if m.Out {
			dir = "->"
		}
		got = append(got, dir+" "+m.Label())
		if i > 0 && m.At.Before(tr[i-1].At) {
			t.Errorf("trace out of order at %d: %v", i, tr)
		}
		if m.CallID != out.callID {
			t.Errorf("message %d (%s) has Call-ID %q, want %q", i, m.Label(), m.CallID, out.callID)
		}
	}
	want := []string{"-> INVITE", "<- 180 Ringing (INVITE)", "<- 200 OK (INVITE)", "-> ACK", "-> REFER", "<- 405 Method Not Allowed (REFER)", "-> BYE", "<- 200 OK (BYE)"}
	if !containsInOrder(got, want) {
		t.Errorf("the caller's trace\n%s\nlacks, in this order,\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	in2 := callee.Trace()
	if len(in2) == 0 || in2[0].Out || in2[0].Method != "INVITE" {
		t.Errorf("the callee's trace starts with %+v, want the received INVITE", in2)
	}
}

// containsInOrder reports whether want is a subsequence of got.
func containsInOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// The report counts gaps, timestamp jumps and SSRCs of an arrival log.
func TestReport(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	pkts := []Packet{
		{At: at(0), SSRC: 1, Seq: 65534, TS: 0},
		{At: at(20), SSRC: 1, Seq: 65535, TS: 160},
		{At: at(40), SSRC: 1, Seq: 0, TS: 320},   // wraps, nothing lost
		{At: at(100), SSRC: 1, Seq: 3, TS: 800},  // 2 lost, timestamps follow
		{At: at(120), SSRC: 1, Seq: 4, TS: 2000}, // a timestamp jump
		{At: at(140), SSRC: 2, Seq: 9, TS: 5},    // a new SSRC: no gap counted
		{At: at(160), SSRC: 2, Seq: 10, TS: 165},
	}
	r := report(t0, at(200), pkts, nil, nil)
	if r.Packets != 7 || r.SSRCs != 2 || r.Lost != 2 || r.TSJumps != 1 || r.LongestGap != 60*time.Millisecond {
		t.Errorf("report %+v: want 7 packets, 2 SSRCs, 2 lost, 1 jump, longest gap 60ms", r)
	}
	if r := report(t0, at(500), nil, nil, nil); r.LongestGap != 500*time.Millisecond || r.Packets != 0 {
		t.Errorf("an empty window: %+v, want the whole window as its gap", r)
	}
}

func TestParseMessage(t *testing.T) {
	for _, c := range []struct {
		in   string
		ok   bool
		want string
	}{
		{"INVITE sip:+15550100@127.0.0.1:5060 SIP/2.0\r\nCall-ID: abc\r\nCSeq: 1 INVITE\r\n\r\n", true, "INVITE"},
		{"SIP/2.0 200 OK\r\ncseq: 2 BYE\r\n\r\n", true, "200 OK (BYE)"},
		{"NOTIFY sip:a@b SIP/2.0\r\nContent-Type: message/sipfrag;version=2.0\r\n\r\nSIP/2.0 100 Trying\r\n", true, "NOTIFY (SIP/2.0 100 Trying)"},
		{"\r\n\r\n", false, ""},
		{"SIP/2.0 99 Low\r\n\r\n", false, ""},
		{"HELLO\r\n\r\n", false, ""},
	} {
		m, ok := parseMessage([]byte(c.in))
		if ok != c.ok || (ok && m.Label() != c.want) {
			t.Errorf("parseMessage(%q) = %q, %v; want %q, %v", c.in, m.Label(), ok, c.want, c.ok)
		}
	}
}

func FuzzParseMessage(f *testing.F) {
	f.Add([]byte("SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\nCall-ID: x\r\n\r\n"))
	f.Add([]byte("NOTIFY sip:a@b SIP/2.0\r\nc: message/sipfrag\r\n\r\nSIP/2.0 200 OK"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n := fragStatus(string(b)); n != 0 && (n < 100 || n > 699) {
			t.Fatalf("fragStatus(%q) = %d, out of range", b, n)
		}
		m, ok := parseMessage(b)
		if !ok {
			return
		}
		if m.Status == 0 && m.Method == "" {
			t.Fatalf("a parsed message with neither status nor method: %+v", m)
		}
		if m.Status != 0 && (m.Status < 100 || m.Status > 699) {
			t.Fatalf("status %d out of range", m.Status)
		}
		_ = m.Label()
	})
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	ip := netip.MustParseAddr("127.0.0.1")
	for _, c := range []Config{
		{Gateway: "127.0.0.1:5060", IP: ip, Tone: 440},
		{User: "a", Gateway: "nohost", IP: ip, Tone: 440},
		{User: "a", Gateway: "127.0.0.1:0", IP: ip, Tone: 440},
		{User: "a", Gateway: "127.0.0.1:5060", IP: ip, Tone: 0},
		{User: "a", Gateway: "127.0.0.1:5060", Tone: 440},
	} {
		if p, err := Start(c); err == nil {
			p.Close()
			t.Errorf("Start(%+v) succeeded, want an error", c)
		}
	}
}
