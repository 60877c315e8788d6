package config

import (
	"fmt"
	"strings"
	"time"
)

// Plugins configures the out-of-process plugins a command loads
// (docs/plugins.md).
type Plugins struct {
	// Dir is where a plugin named by a bare file name (no "/") is found.
	// `baton plugins list` lists it.
	Dir string `koanf:"dir"`
	// Policy is the transfer policy plugin that decides session queries and
	// pulls; an empty path keeps the built-in same-user policy.
	Policy PolicyPlugin `koanf:"policy"`
	// Codecs are codec plugins. Their codecs join the built-in ones and are
	// chosen, like them, by name in the codecs list (e.g. ["opus", "PCMU"]).
	Codecs []CodecPlugin `koanf:"codecs"`
}

// CodecPlugin is a codec plugin (plugins.LoadCodecs).
type CodecPlugin struct {
	// Path is the plugin binary: a path, or a file name in plugins.dir.
	Path string `koanf:"path"`
	// Args are passed to the plugin, e.g. ["-rate", "8000"].
	Args []string `koanf:"args"`
	// SHA256 pins the binary's hex sha256; empty pins the hash of the
	// binary found at start.
	SHA256 string `koanf:"sha256"`
	// FrameTimeout bounds one frame's round trip to the plugin; 0 means
	// the default (20ms, one packet time).
	FrameTimeout time.Duration `koanf:"frame_timeout"`
	// Fallback is the built-in codec the calls (a phone's, a gateway's
	// devices') switch to, with an
	// in-call media update, when this plugin dies (issue 10 §3,
	// docs/plugins.md): "" or "PCMU" for G.711 u-law, "PCMA", or "off"
	// to keep the calls on the plugin's codec until it is restarted.
	Fallback string `koanf:"fallback"`
	// FallbackAfter is how long an outage may last before the calls fall
	// back; 0 means at once (a restart takes longer than 200 ms).
	FallbackAfter time.Duration `koanf:"fallback_after"`
}

// FallbackCodec returns the codec Fallback names ("" = PCMU), or "" when
// it is off.
func (c CodecPlugin) FallbackCodec() string {
	switch c.Fallback {
	case "":
		return "PCMU"
	case "off":
		return ""
	}
	return c.Fallback
}

// PolicyPlugin is a transfer policy plugin (plugins.LoadPolicy).
type PolicyPlugin struct {
	// Path is the plugin binary: a path, or a file name in plugins.dir.
	Path string `koanf:"path"`
	// Args are passed to the plugin, e.g. ["-rules", "policy.yaml"].
	Args []string `koanf:"args"`
	// SHA256 pins the binary's hex sha256; empty pins the hash of the
	// binary found at start.
	SHA256 string `koanf:"sha256"`
	// Timeout is the deadline of one decision.
	Timeout time.Duration `koanf:"timeout"`
	// FailMode is the answer while the plugin cannot give one (dead, hung,
	// past the deadline): deny, allow or same-user.
	FailMode string `koanf:"fail_mode"`
}

// DefaultPlugins returns the defaults: no plugins; a policy plugin, once
// configured, answers within 200ms or is denied.
func DefaultPlugins() Plugins {
	return Plugins{Policy: PolicyPlugin{Timeout: 200 * time.Millisecond, FailMode: "deny"}}
}

// Resolve returns the path a plugin named path is run from: path itself
// when it names a directory, else the file in dir.
func (pl Plugins) Resolve(path string) string {
	if path == "" || strings.Contains(path, "/") || pl.Dir == "" {
		return path
	}
	return strings.TrimSuffix(pl.Dir, "/") + "/" + path
}

func (pl Plugins) validate(p *problems) {
	for i, c := range pl.Codecs {
		key := fmt.Sprintf("plugins.codecs[%d]", i)
		if c.Path == "" {
			p.add(key+".path", shown("empty"), "set the codec plugin binary")
		}
		if c.SHA256 != "" && (len(c.SHA256) != 64 || strings.Trim(strings.ToLower(c.SHA256), "0123456789abcdef") != "") {
			p.add(key+".sha256", c.SHA256, "want 64 hex digits (sha256sum of the binary)")
		}
		if c.FrameTimeout != 0 {
			p.durationRange(key+".frame_timeout", c.FrameTimeout, time.Millisecond, time.Second)
		}
		switch c.Fallback {
		case "", "off", "PCMU", "PCMA":
		default:
			p.add(key+".fallback", c.Fallback, "want PCMU, PCMA (the built-in G.711 codecs) or off")
		}
		if c.FallbackAfter != 0 {
			p.durationRange(key+".fallback_after", c.FallbackAfter, 0, 10*time.Second)
		}
	}
	pp := pl.Policy
	if pp.Path == "" {
		if len(pp.Args) > 0 || pp.SHA256 != "" {
			p.add("plugins.policy.path", shown("empty"), "set the plugin binary, or remove plugins.policy.args and sha256")
		}
		return
	}
	if pp.SHA256 != "" && (len(pp.SHA256) != 64 || strings.Trim(strings.ToLower(pp.SHA256), "0123456789abcdef") != "") {
		p.add("plugins.policy.sha256", pp.SHA256, "want 64 hex digits (sha256sum of the binary)")
	}
	p.durationRange("plugins.policy.timeout", pp.Timeout, time.Millisecond, 10*time.Second)
	switch pp.FailMode {
	case "deny", "allow", "same-user":
	default:
		p.add("plugins.policy.fail_mode", pp.FailMode, "want deny, allow or same-user")
	}
}
