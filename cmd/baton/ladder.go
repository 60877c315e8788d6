package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/sipbridge/simphone"
)

// A ladder diagram of one move of the demo's story (issue 9 §5): a column
// per party, and, top to bottom in time order, an arrow per SIP message
// (from the simphones' traces) and per P2P message or handoff step (from
// the handoff's steps and the endpoints' events). It is written as one
// self-contained SVG file (no script, no external style or font).

// Kinds of ladder rows.
const (
	ladderSIP  = "sip"  // a SIP message
	ladderP2P  = "p2p"  // a P2P message or handoff step between two parties
	ladderNote = "note" // something that happened at one party
)

// ladderArrow is one row: an arrow From -> To (the same column: a step
// inside one party), or a note at From.
type ladderArrow struct {
	At       time.Time
	From, To string // column names
	Kind     string
	Label    string
}

// ladder is one diagram.
type ladder struct {
	Title   string
	Columns []string
	Arrows  []ladderArrow
	// Footer lines under the diagram (what the caller heard).
	Footer []string
	// Start is the time axis's zero (the move's start); zero: the first
	// row. Rows before it (a login long before) show negative times.
	Start time.Time
}

// add appends a row.
func (l *ladder) add(a ladderArrow) { l.Arrows = append(l.Arrows, a) }

// column returns the index of name, or -1.
func (l *ladder) column(name string) int {
	for i, c := range l.Columns {
		if c == name {
			return i
		}
	}
	return -1
}

// Layout of the SVG, in pixels.
const (
	ladderColWidth = 220
	ladderLeft     = 90 // the time axis
	ladderTop      = 70
	ladderRow      = 26
	ladderFooter   = 18
)

// SVG renders the diagram. Rows are sorted by time (stable); a row naming
// an unknown column is an error, so nothing is silently dropped.
func (l *ladder) SVG() ([]byte, error) {
	if len(l.Columns) == 0 {
		return nil, errors.New("ladder: no columns")
	}
	rows := append([]ladderArrow(nil), l.Arrows...)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].At.Before(rows[j].At) })
	for _, a := range rows {
		if l.column(a.From) < 0 || (a.Kind != ladderNote && l.column(a.To) < 0) {
			return nil, fmt.Errorf("ladder %q: row %q names a column that is not in %v (%q -> %q)", l.Title, a.Label, l.Columns, a.From, a.To)
		}
		switch a.Kind {
		case ladderSIP, ladderP2P, ladderNote:
		default:
			return nil, fmt.Errorf("ladder %q: row %q has unknown kind %q", l.Title, a.Label, a.Kind)
		}
	}
	t0 := l.Start
	if t0.IsZero() && len(rows) > 0 {
		t0 = rows[0].At
	}
	x := func(col int) int { return ladderLeft + col*ladderColWidth + ladderColWidth/2 }
	width := ladderLeft + len(l.Columns)*ladderColWidth + 20
	bottom := ladderTop + (len(rows)+1)*ladderRow
	height := bottom + 30 + len(l.Footer)*ladderFooter + 20

	var b bytes.Buffer
	esc := func(s string) string {
		var e bytes.Buffer
		_ = xml.EscapeText(&e, []byte(s))
		return e.String()
	}
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="monospace" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<title>%s</title>`+"\n", esc(l.Title))
	b.WriteString(`<defs>` +
		`<marker id="sip" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#1f5fbf"/></marker>` +
		`<marker id="p2p" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#1d8a3a"/></marker>` +
		"</defs>\n")
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", esc(l.Title))
	fmt.Fprintf(&b, `<text x="10" y="40" fill="#555">blue: SIP messages (simphone traces); green: P2P messages and handoff steps; grey: events</text>`+"\n")
	for i, c := range l.Columns {
		fmt.Fprintf(&b, `<g class="column"><text x="%d" y="%d" text-anchor="middle" font-weight="bold">%s</text>`, x(i), ladderTop-12, esc(c))
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999" stroke-dasharray="4,3"/></g>`+"\n", x(i), ladderTop-4, x(i), bottom)
	}
	for n, a := range rows {
		y := ladderTop + (n+1)*ladderRow
		ms := float64(a.At.Sub(t0)) / float64(time.Millisecond)
		fmt.Fprintf(&b, `<g class="row %s" data-at-ms="%.3f">`, a.Kind, ms)
		fmt.Fprintf(&b, `<text x="8" y="%d" fill="#555">%+.1f ms</text>`, y+4, ms)
		from := l.column(a.From)
		color := map[string]string{ladderSIP: "#1f5fbf", ladderP2P: "#1d8a3a", ladderNote: "#666"}[a.Kind]
		switch {
		case a.Kind == ladderNote:
			fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="3" fill="%s"/>`, x(from), y, color)
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">%s</text>`, x(from)+8, y+4, color, esc(a.Label))
		case a.From == a.To:
			fmt.Fprintf(&b, `<path d="M%d,%d h24 v10 h-24" fill="none" stroke="%s" marker-end="url(#%s)"/>`, x(from), y-5, color, a.Kind)
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">%s</text>`, x(from)+30, y+4, color, esc(a.Label))
		default:
			to := l.column(a.To)
			x1, x2 := x(from), x(to)
			dash := ""
			if a.Kind == ladderP2P {
				dash = ` stroke-dasharray="6,2"`
			}
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"%s marker-end="url(#%s)"/>`, x1, y, x2, y, color, dash, a.Kind)
			mid := (x1 + x2) / 2
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="%s">%s</text>`, mid, y-4, color, esc(a.Label))
		}
		b.WriteString("</g>\n")
	}
	for i, f := range l.Footer {
		fmt.Fprintf(&b, `<text class="footer" x="10" y="%d">%s</text>`+"\n", bottom+30+i*ladderFooter, esc(f))
	}
	b.WriteString("</svg>\n")
	return b.Bytes(), nil
}

// write renders the diagram to path.
func (l *ladder) write(path string) error {
	svg, err := l.SVG()
	if err != nil {
		return err
	}
	return os.WriteFile(path, svg, 0o644)
}

// addSIP adds a phone's SIP messages (its trace between from and to): the
// phone is column phone, its far side (the gateway) column gw.
func (l *ladder) addSIP(msgs []simphone.Message, phone, gw string) {
	for _, m := range msgs {
		a := ladderArrow{At: m.At, From: gw, To: phone, Kind: ladderSIP, Label: m.Label()}
		if m.Out {
			a.From, a.To = phone, gw
		}
		l.add(a)
	}
}

// handoffRoles names the columns of a pull's three roles: A takes the
// call from B while C, the far party, keeps it.
type handoffRoles struct{ A, B, C string }

// addSteps adds a handoff's steps as arrows between its roles' columns,
// following docs/handoff.md: who sends what to whom at each step.
func (l *ladder) addSteps(h endpoint.HandoffInfo, r handoffRoles) {
	for _, s := range h.Steps {
		from, to := r.A, r.A
		switch s.Step {
		case 2, 5: // the session query; stop your audio
			to = r.B
		case 3: // B's session parameters
			from = r.B
		case 4, 7, 11: // audio, re-establish, the new address: A to C
			to = r.C
		case 12: // C's audio on the new address
			from = r.C
		}
		label := fmt.Sprintf("step %d: %s", s.Step, s.Title)
		l.add(ladderArrow{At: s.At, From: from, To: to, Kind: ladderP2P, Label: label})
	}
}

// addEvents adds an endpoint's events between from and to (inclusive):
// a call's ringing and answer as P2P arrows from the peer's column (peers
// maps a P2P identity to its column; unknown peers stay notes), the rest
// as notes at col. Handoff steps are left out: addSteps draws them.
func (l *ladder) addEvents(evs []endpoint.Event, col string, peers map[string]string, from, to time.Time) {
	for _, ev := range evs {
		if ev.Time.Before(from) || ev.Time.After(to) || ev.Type == "handoff.step" || ev.Type == "presence" {
			continue
		}
		label := ev.Type
		if ev.Peer != "" {
			label += " " + ev.Peer
		}
		peerCol, known := peers[ev.Peer]
		switch {
		case (ev.Type == "call.ringing" || ev.Type == "call.active") && known:
			// The callee's invite or the caller's ringing and answer: a
			// message from the peer either way.
			l.add(ladderArrow{At: ev.Time, From: peerCol, To: col, Kind: ladderP2P, Label: "P2P " + ev.Type + " (from " + ev.Peer + ")"})
		default:
			if ev.Detail != "" && len(ev.Detail) < 60 {
				label += ": " + ev.Detail
			}
			l.add(ladderArrow{At: ev.Time, From: col, Kind: ladderNote, Label: strings.TrimSpace(label)})
		}
	}
}

// eventLog keeps every event of one endpoint's subscription, for ladders.
type eventLog struct {
	mu  sync.Mutex
	evs []endpoint.Event
}

// record stores events from ch until it closes.
func (r *eventLog) record(ch <-chan endpoint.Event, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev := range ch {
			r.mu.Lock()
			r.evs = append(r.evs, ev)
			r.mu.Unlock()
		}
	}()
}

func (r *eventLog) events() []endpoint.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]endpoint.Event(nil), r.evs...)
}
