// Command presence-redis is Baton's in-tree presence backend plugin: the
// presence.Store of package plugins/presenceredis, so access servers
// sharing one Redis share one presence space. Baton starts it; run by hand
// it only explains that.
//
//	presence-redis -addr 127.0.0.1:6379 [-db 0] [-prefix baton:presence:] [-lease 30s]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/baton-voice/baton/plugins/presenceredis"
	"github.com/baton-voice/baton/plugins/sdk"
)

func main() {
	var o presenceredis.Options
	flag.StringVar(&o.Addr, "addr", "127.0.0.1:6379", "Redis server host:port")
	flag.IntVar(&o.DB, "db", 0, "Redis database number")
	flag.StringVar(&o.Username, "username", "", "Redis ACL user")
	pwFile := flag.String("password-file", "", "file holding the Redis password")
	flag.StringVar(&o.Prefix, "prefix", presenceredis.DefaultPrefix, "key prefix shared by the access servers of one presence space")
	flag.DurationVar(&o.LeaseTTL, "lease", presenceredis.DefaultLeaseTTL, "how long a crashed access server's endpoints stay online")
	flag.BoolVar(&o.KeyspaceEvents, "keyspace-events", true, "enable Redis expired-key notifications (CONFIG SET) if off")
	flag.Parse()
	log := sdk.Logger(slog.LevelInfo)
	if *pwFile != "" {
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "presence-redis:", err)
			os.Exit(1)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
	}
	o.Owner, o.Logger = sdk.PresenceOwner(), log
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	s, err := presenceredis.Open(ctx, o)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "presence-redis:", err)
		os.Exit(1)
	}
	log.Info("connected", "addr", o.Addr, "db", o.DB, "prefix", o.Prefix, "lease", o.LeaseTTL, "owner", s.Owner())
	sdk.ServePresence(s, sdk.Name("presence-redis"), sdk.Version("1.0.0"),
		sdk.Capabilities("shared", "lease-ttl", "keyspace-events"),
		sdk.Health(s.Ping), sdk.SelfTest(s.Ping))
}
