package control

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/baton-voice/baton/p2p/endpoint"
)

// Times are printed in the location they carry: the server's local zone,
// which on a loopback admin API is the reader's.
const (
	clockLayout = "15:04:05"
	eventLayout = "15:04:05.000"
)

// PrintCalls writes calls as an aligned table, one call a line:
//
//	ID      DIR  PEER        STATE   CODEC  SRTP  REMOTE MEDIA     STARTED   INFO
//	c-1f2e  out  bob/mobile  active  PCMU   yes   127.0.0.7:40002  08:12:01  -
func PrintCalls(w io.Writer, calls []endpoint.CallInfo) error {
	if len(calls) == 0 {
		_, err := io.WriteString(w, "no calls\n")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDIR\tPEER\tSTATE\tCODEC\tSRTP\tREMOTE MEDIA\tSTARTED\tINFO")
	for _, c := range calls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			dash(c.ID), direction(c.Direction), dash(c.Peer), dash(c.State), dash(c.Codec),
			yesNo(c.SRTP), dash(c.RemoteMedia), clock(c.Started, clockLayout), dash(callInfo(c)))
	}
	return tw.Flush()
}

// PrintBuddies writes the buddy list as an aligned table, one device a line
// ("*" marks the user's own devices):
//
//	BUDDY         STATUS   SIGNAL
//	alice/desk *  online   127.0.0.2:5070
//	bob/mobile    online   127.0.0.7:5070
func PrintBuddies(w io.Writer, buddies []endpoint.BuddyInfo) error {
	if len(buddies) == 0 {
		_, err := io.WriteString(w, "no buddies\n")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BUDDY\tSTATUS\tSIGNAL")
	for _, b := range buddies {
		mark := ""
		if b.Self {
			mark = " *"
		}
		if len(b.Devices) == 0 {
			fmt.Fprintf(tw, "%s%s\t%s\t-\n", dash(b.User), mark, dash(b.Status))
			continue
		}
		for _, d := range b.Devices {
			fmt.Fprintf(tw, "%s/%s%s\t%s\t%s\n", clean(b.User), clean(d.Device), mark, dash(d.Status), dash(d.SignalAddr))
		}
	}
	return tw.Flush()
}

// PrintEvent writes one event as one line, for a live stream:
//
//	08:12:01.123  call.active   c-00c1b475ad2d9629  bob/mobile        codec=PCMU
//	08:12:03.480  handoff.step  c-00c1b475ad2d9629  alice/desk        step=5 stop audio to C
//
// A stream prints events one at a time, so a tabwriter could not align
// them; fixed-width columns do.
func PrintEvent(w io.Writer, ev endpoint.Event) error {
	var b strings.Builder
	b.Grow(96)
	b.WriteString(clock(ev.Time, eventLayout))
	b.WriteString("  ")
	pad(&b, clean(ev.Type), 12)
	b.WriteString("  ")
	if ev.CallID != "" || ev.Peer != "" {
		pad(&b, dash(ev.CallID), 18) // "c-" and 16 hex digits, the endpoint's ids
		b.WriteString("  ")
		pad(&b, dash(ev.Peer), 16)
		b.WriteString("  ")
	}
	// The state is news only where the type does not already say it
	// (presence: "online"; not call.active: "active").
	if ev.State != "" && !strings.HasSuffix(ev.Type, "."+ev.State) {
		b.WriteString(clean(ev.State))
		b.WriteByte(' ')
	}
	if ev.Step != 0 {
		b.WriteString("step=")
		b.WriteString(strconv.Itoa(ev.Step))
		b.WriteByte(' ')
	}
	b.WriteString(clean(ev.Detail))
	line := strings.TrimRight(b.String(), " ")
	_, err := io.WriteString(w, line+"\n")
	return err
}

func pad(b *strings.Builder, s string, width int) {
	b.WriteString(s)
	for n := len(s); n < width; n++ {
		b.WriteByte(' ')
	}
}

func clock(t time.Time, layout string) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(layout)
}

// dash cleans s for a table cell, "-" standing for empty.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return clean(s)
}

// clean replaces control characters: peer names and details come from
// other machines, and a newline, tab or terminal escape sequence in them
// must not break a line, a column or the reader's terminal.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

func direction(d string) string {
	switch d {
	case "outgoing":
		return "out"
	case "incoming":
		return "in"
	}
	return dash(d)
}

// callInfo is the last column: why a call ended, or its media health.
func callInfo(c endpoint.CallInfo) string {
	// A peer that is a SIP device behind a gateway says so first:
	// "alice/desk (SIP, via gateway gw1)".
	var via string
	if c.PeerGateway != "" {
		via = "peer is SIP, via gateway " + c.PeerGateway + "; "
	}
	if c.EndReason != "" {
		return via + c.EndReason
	}
	if c.HeldBy != "" {
		// docs/protocol.md §17: who holds the call, and the direction.
		via += fmt.Sprintf("on hold (%s, %s); ", c.HeldBy, c.MediaDirection)
	}
	if m := c.Media; m != nil {
		return via + fmt.Sprintf("sent=%d recv=%d lost=%d jitter=%.1fms", m.PacketsSent, m.PacketsReceived, m.Lost, m.JitterMS)
	}
	return strings.TrimSuffix(via, "; ")
}

// PrintHandoff writes one handoff (a pull or a rebind) as a block: a header
// line, one line per claim step done with its time since the request, then
// when known the first audio from the far party, the media address the call
// ended on and the error:
//
//	h-3f9a0c1d2e4b  pull  alice/desk -> this endpoint  call c-00c1b475ad2d9629  peer bob/mobile  done  at 08:14:10.200
//	  step  1     before  A logs in: logged in to 127.0.0.1:7000 (at 08:12:01.123)
//	  step  4   +1.80 ms  A sends audio to C: audio from 127.0.0.2:41000 (ssrc 5a3c9e01) to bob/mobile at 127.0.0.7:40002
//	  step  5   +2.31 ms  A tells B to stop its audio: alice/desk stopped sending audio to bob/mobile
//	first audio from bob/mobile after 81.59 ms
//	media now on 127.0.0.2:41002
//
// Step 1, the login, happened before the request: it shows "before" and
// its clock time rather than a large negative number.
func PrintHandoff(w io.Writer, h endpoint.HandoffInfo) error {
	var b strings.Builder
	b.Grow(128 + 120*len(h.Steps))
	b.WriteString(dash(h.ID))
	b.WriteString("  ")
	b.WriteString(dash(h.Kind))
	switch {
	case h.To != "":
		b.WriteString("  ")
		b.WriteString(dash(h.From))
		b.WriteString(" -> ")
		b.WriteString(clean(h.To))
	case h.From != "":
		b.WriteString("  ")
		b.WriteString(clean(h.From))
		b.WriteString(" -> this endpoint")
	}
	if h.CallID != "" {
		b.WriteString("  call ")
		b.WriteString(clean(h.CallID))
	}
	if h.Peer != "" {
		b.WriteString("  peer ")
		b.WriteString(clean(h.Peer))
	}
	b.WriteString("  ")
	b.WriteString(dash(h.State))
	if !h.Started.IsZero() {
		b.WriteString("  at ")
		b.WriteString(h.Started.Format(eventLayout))
	}
	b.WriteByte('\n')

	// One width for every step's time so the titles line up.
	width := 0
	for _, s := range h.Steps {
		width = max(width, len(stepTime(s)))
	}
	for _, s := range h.Steps {
		fmt.Fprintf(&b, "  step %2d  %*s  ", s.Step, width, stepTime(s))
		switch {
		case s.Title != "" && s.Detail != "":
			b.WriteString(clean(s.Title))
			b.WriteString(": ")
			b.WriteString(clean(s.Detail))
		case s.Title != "":
			b.WriteString(clean(s.Title))
		default:
			b.WriteString(clean(s.Detail))
		}
		if s.SinceStartMS < 0 && !s.At.IsZero() {
			b.WriteString(" (at ")
			b.WriteString(s.At.Format(eventLayout))
			b.WriteByte(')')
		}
		b.WriteByte('\n')
	}
	if h.FirstAudioMS != 0 {
		peer := "C"
		if h.Peer != "" {
			peer = clean(h.Peer)
		}
		fmt.Fprintf(&b, "first audio from %s after %.2f ms\n", peer, h.FirstAudioMS)
	}
	if h.NewAddress != "" {
		b.WriteString("media now on ")
		b.WriteString(clean(h.NewAddress))
		b.WriteByte('\n')
	}
	if h.Error != "" {
		b.WriteString("error: ")
		b.WriteString(clean(h.Error))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// stepTime is a step's time since the request, "+1.80 ms", or "before" for
// a step done before it (step 1, the login; its clock time follows the
// text instead of a large negative number).
func stepTime(s endpoint.StepInfo) string {
	if s.SinceStartMS < 0 {
		return "before"
	}
	return "+" + strconv.FormatFloat(s.SinceStartMS, 'f', 2, 64) + " ms"
}

// PrintHandoffs writes handoffs with PrintHandoff, a blank line between two.
func PrintHandoffs(w io.Writer, list []endpoint.HandoffInfo) error {
	if len(list) == 0 {
		_, err := io.WriteString(w, "no handoffs\n")
		return err
	}
	for i, h := range list {
		if i > 0 {
			if _, err := io.WriteString(w, "\n"); err != nil {
				return err
			}
		}
		if err := PrintHandoff(w, h); err != nil {
			return err
		}
	}
	return nil
}

// PrintSessions writes another device's sessions (what a pull would take) as
// an aligned table, one session a line:
//
//	CALL ID             PEER        DIRECTION  CODEC  PEER MEDIA
//	c-00c1b475ad2d9629  bob/mobile  sendrecv   PCMU   127.0.0.7:40002
func PrintSessions(w io.Writer, sessions []endpoint.SessionInfo) error {
	if len(sessions) == 0 {
		_, err := io.WriteString(w, "no sessions\n")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CALL ID\tPEER\tDIRECTION\tCODEC\tPEER MEDIA")
	for _, s := range sessions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", dash(s.CallID), dash(s.Peer), dash(s.Direction), dash(s.Codec), dash(s.PeerMedia))
	}
	return tw.Flush()
}
