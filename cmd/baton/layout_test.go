package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDependencyDirection asserts the package rules of DESIGN.md §3:
// sipbridge and plugins never import gateway; p2p and codecs import no
// other package of ours except each other; config imports nothing of ours.
func TestDependencyDirection(t *testing.T) {
	t.Parallel()
	const mod = "github.com/baton-voice/baton/"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := func(pkg, imp string) bool {
		top := func(p string) string { s, _, _ := strings.Cut(strings.TrimPrefix(p, mod), "/"); return s }
		from, to := top(pkg), top(imp)
		if from == to {
			return true
		}
		switch from {
		case "cmd":
			return true
		case "gateway":
			return to == "p2p" || to == "sipbridge" || to == "codecs" || to == "plugins" || to == "config"
		case "sipbridge", "plugins":
			return to != "gateway" && to != "cmd"
		case "p2p":
			return to == "codecs"
		case "codecs":
			return to == "p2p"
		case "config":
			return false
		}
		return false
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := fields[0]
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, mod) {
				continue
			}
			n++
			if !allowed(pkg, imp) {
				t.Errorf("%s imports %s: not allowed by DESIGN.md §3", strings.TrimPrefix(pkg, mod), strings.TrimPrefix(imp, mod))
			}
		}
	}
	if n == 0 {
		t.Fatal("found no internal imports at all: the go list output was not parsed")
	}
}

// TestTopLevelLayout asserts the top level the product brief fixes.
func TestTopLevelLayout(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"gateway", "plugins", "codecs", "sipbridge", "p2p", "config", "docs", "cmd/baton", "Makefile", ".ci/run", "README.md", "go.mod", "go.sum"} {
		if _, err := os.Stat(filepath.Join("..", "..", p)); err != nil {
			t.Errorf("%s is missing from the repository's top level", p)
		}
	}
}
