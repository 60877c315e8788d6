package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/sipbridge/simphone"
)

// svgRows parses a ladder SVG: it must be well-formed XML; it returns the
// rows' data-at-ms values and texts in document order, and every text.
func svgRows(t *testing.T, svg []byte) (ats []float64, rows []string, texts []string) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(svg))
	inRow := false
	var cur strings.Builder
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v\n%s", err, svg)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if e.Name.Local == "g" {
				for _, a := range e.Attr {
					if a.Name.Local == "data-at-ms" {
						v, err := strconv.ParseFloat(a.Value, 64)
						if err != nil {
							t.Fatalf("row time %q: %v", a.Value, err)
						}
						ats = append(ats, v)
						inRow = true
						cur.Reset()
					}
				}
			}
		case xml.CharData:
			texts = append(texts, string(e))
			if inRow {
				cur.Write(e)
			}
		case xml.EndElement:
			if e.Name.Local == "g" && inRow {
				rows = append(rows, cur.String())
				inRow = false
			}
		}
	}
	return ats, rows, texts
}

// A ladder of a pull across the bridge: SIP messages from a trace, the
// twelve steps by role, events; the SVG is well-formed, holds each
// message once, in time order whatever the order rows were added in.
func TestLadderSVG(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	l := &ladder{Title: "move 1: pull <desk> & laptop", Columns: []string{"PSTN caller", "gateway", "alice desk phone", "alice/laptop", "bob"}}
	var steps []endpoint.StepInfo
	for i := 12; i >= 1; i-- { // added out of order on purpose
		steps = append(steps, endpoint.StepInfo{Step: i, Title: "title " + strconv.Itoa(i), At: at(10 + i)})
	}
	l.addSteps(endpoint.HandoffInfo{Steps: steps}, handoffRoles{A: "alice/laptop", B: "gateway", C: "gateway"})
	l.addSIP([]simphone.Message{
		{At: at(30), Out: false, Method: "BYE", Line: "BYE sip:alice@127.0.0.1"},
		{At: at(31), Out: true, Method: "BYE", Status: 200, Line: "200 OK"},
	}, "alice desk phone", "gateway")
	l.addEvents([]endpoint.Event{
		{Time: at(5), Type: "call.ringing", Peer: "pstn/trunk1"},
		{Time: at(6), Type: "presence", Peer: "x"},               // left out
		{Time: at(40), Type: "call.ended", Detail: "handed off"}, // a note
		{Time: at(99), Type: "call.active"},                      // after the window
	}, "alice/laptop", map[string]string{"pstn/trunk1": "gateway"}, at(0), at(50))
	l.Footer = []string{"the caller heard: 0 lost"}
	l.Start = at(5)
	svg, err := l.SVG()
	if err != nil {
		t.Fatal(err)
	}
	ats, rows, texts := svgRows(t, svg)
	if len(ats) != 12+2+2 || ats[0] != 0 || ats[len(ats)-1] != 35 {
		t.Fatalf("%d rows from %v to %v ms, want 16 (12 steps, 2 SIP, 2 events) from 0 to 35 ms after Start:\n%s", len(ats), ats[0], ats[len(ats)-1], svg)
	}
	for i := 1; i < len(ats); i++ {
		if ats[i] < ats[i-1] {
			t.Errorf("row %d at %.1f ms comes after a row at %.1f ms", i, ats[i], ats[i-1])
		}
	}
	want := []string{"P2P call.ringing (from pstn/trunk1)"}
	for i := 1; i <= 12; i++ {
		want = append(want, "step "+strconv.Itoa(i)+": title "+strconv.Itoa(i))
	}
	want = append(want, "BYE", "200 OK (BYE)", "call.ended: handed off")
	for i, w := range want {
		if i >= len(rows) || !strings.Contains(rows[i], w) {
			t.Errorf("row %d is %q, want it to show %q", i, rows[i], w)
		}
	}
	all := strings.Join(texts, "\n")
	for _, w := range append(l.Columns, l.Title, "the caller heard: 0 lost") {
		if !strings.Contains(all, w) {
			t.Errorf("the SVG lacks the text %q", w)
		}
	}
	if bytes.Contains(svg, []byte("href")) || bytes.Contains(svg, []byte("<script")) {
		t.Errorf("the SVG refers to something outside itself")
	}
	path := filepath.Join(t.TempDir(), "l.svg")
	if err := l.write(path); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, svg) {
		t.Errorf("write: %v", err)
	}
}

// A row naming a party that has no column is an error, not a row lost.
func TestLadderUnknownColumn(t *testing.T) {
	l := &ladder{Title: "x", Columns: []string{"a", "b"}}
	l.add(ladderArrow{At: time.Now(), From: "a", To: "c", Kind: ladderSIP, Label: "INVITE"})
	if _, err := l.SVG(); err == nil || !strings.Contains(err.Error(), `"c"`) {
		t.Errorf("SVG with an unknown column: %v, want an error naming it", err)
	}
	if _, err := (&ladder{}).SVG(); err == nil {
		t.Error("a ladder without columns rendered")
	}
}
