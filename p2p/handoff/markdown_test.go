package handoff

import (
	"fmt"
	"strings"
	"testing"
)

func TestMarkdownContents(t *testing.T) {
	t.Parallel()
	doc := string(Markdown(nil))
	for _, r := range Roles() {
		for _, row := range Table(r) {
			cell := fmt.Sprintf("| %s | %s | %s |", row.From, row.Event, row.To)
			if !strings.Contains(doc, cell) {
				t.Errorf("row %q missing", cell)
			}
		}
		for _, s := range States(r) {
			if !strings.Contains(doc, "| "+s.String()+" | ") {
				t.Errorf("state %s not listed", s)
			}
		}
	}
	for s := Step(1); s <= LastStep; s++ {
		if !strings.Contains(doc, fmt.Sprintf("%d. %s", s, s.Title())) {
			t.Errorf("step %d missing from the diagram", s)
		}
		if !strings.Contains(doc, s.Description()) {
			t.Errorf("step %d wording missing", s)
		}
	}
	for _, s := range scenarios() {
		if !strings.Contains(doc, "### "+s.name+"\n") {
			t.Errorf("scenario %q missing", s.name)
		}
	}
	if strings.Contains(doc, "rejected:") {
		t.Error("a scenario was rejected by the tables while rendering")
	}

	start := strings.Index(doc, "```mermaid\n")
	end := strings.Index(doc[start+1:], "```\n")
	if start < 0 || end < 0 {
		t.Fatal("no mermaid block")
	}
	diagram := doc[start : start+1+end]
	// Mermaid ends a statement at ';' and reads '#' as an entity escape.
	if strings.ContainsAny(diagram, ";#") {
		t.Error("mermaid diagram contains ';' or '#'")
	}
	for _, p := range []string{"participant A", "participant S", "participant B", "participant C"} {
		if !strings.Contains(diagram, p) {
			t.Errorf("diagram lacks %q", p)
		}
	}
}
