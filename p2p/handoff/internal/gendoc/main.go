// Command gendoc writes docs/handoff.md from the handoff tables and the
// endpoint's handler of each action. It runs
// from `go generate ./p2p/handoff`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/p2p/handoff"
)

func main() {
	out := flag.String("o", "docs/handoff.md", "file to write")
	flag.Parse()
	if err := os.WriteFile(*out, handoff.Markdown(endpoint.HandoffHandlers()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}
