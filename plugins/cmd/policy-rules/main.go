// Command policy-rules is Baton's in-tree transfer policy plugin: YAML
// rules, first match wins, reloaded when the file changes (package
// plugins/policyrules documents the file). Baton starts it; run by hand it
// only explains that.
//
//	policy-rules -rules /etc/baton/policy.yaml [-reload 1s]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/baton-voice/baton/plugins/policyrules"
	"github.com/baton-voice/baton/plugins/sdk"
)

func main() {
	rules := flag.String("rules", "policy.yaml", "rules file")
	reload := flag.Duration("reload", time.Second, "how often the rules file is checked for changes")
	flag.Parse()
	log := sdk.Logger(slog.LevelInfo)
	e, err := policyrules.Open(*rules, nil, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "policy-rules:", err)
		os.Exit(1)
	}
	log.Info("rules loaded", "path", *rules, "rules", e.Len())
	e.Watch(*reload)
	defer e.Close()
	sdk.ServePolicy(e, sdk.Name("policy-rules"), sdk.Version("1.0.0"),
		sdk.Capabilities("requester", "owner", "kind", "peer", "same_user", "time", "days", "reload"),
		sdk.SelfTest(func(ctx context.Context) error {
			if _, err := e.Reload(); err != nil {
				return err
			}
			return nil
		}))
}
