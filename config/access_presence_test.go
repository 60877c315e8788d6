package config

import (
	"strings"
	"testing"
	"time"
)

func TestValidateAccessPresencePlugin(t *testing.T) {
	t.Parallel()
	on := func(c *Access) { c.Presence.Plugin.Path = "/usr/lib/baton/plugins/presence-redis" }
	runValidate(t, DefaultAccess, Access.Validate, []vcase[Access]{
		{"plugin configured", func(c *Access) { on(c); c.Presence.Plugin.Args = []string{"-addr", "127.0.0.1:6379"} }, ""},
		{"args without path", func(c *Access) { c.Presence.Plugin.Args = []string{"-addr", "x"} }, "presence.plugin.path"},
		{"owner without path", func(c *Access) { c.Presence.Plugin.Owner = "access1" }, "presence.plugin.path"},
		{"sha256 short", func(c *Access) { on(c); c.Presence.Plugin.SHA256 = "abc" }, "presence.plugin.sha256"},
		{"sha256 not hex", func(c *Access) {
			on(c)
			c.Presence.Plugin.SHA256 = "zz" + strings.Repeat("0", 62)
		}, "presence.plugin.sha256"},
		{"timeout 0", func(c *Access) { on(c); c.Presence.Plugin.Timeout = 0 }, "presence.plugin.timeout"},
		{"timeout 1ms", func(c *Access) { on(c); c.Presence.Plugin.Timeout = time.Millisecond }, ""},
		{"owner with space", func(c *Access) { on(c); c.Presence.Plugin.Owner = "access 1" }, "presence.plugin.owner"},
	})
}
