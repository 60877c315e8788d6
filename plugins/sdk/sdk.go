// Package sdk is what a Baton plugin's main uses. A transfer policy plugin
// is about ten lines:
//
//	package main
//
//	import (
//		"github.com/baton-voice/baton/p2p/handoff"
//		"github.com/baton-voice/baton/plugins/sdk"
//	)
//
//	func main() {
//		sdk.ServePolicy(handoff.SameUser{}, sdk.Name("same-user"), sdk.Version("1.0.0"))
//	}
//
// The SDK answers the go-plugin handshake with the kind's protocol version,
// serves the Info service (describe, health, self-test), writes log lines
// in the shape the host bridges into its slog, and exits when the host
// goes away. docs/plugins.md is the author guide.
package sdk

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"google.golang.org/grpc"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/p2p/presence"
	"github.com/baton-voice/baton/plugins/internal/pb/codecv1"
	"github.com/baton-voice/baton/plugins/internal/pb/policyv1"
	"github.com/baton-voice/baton/plugins/internal/pb/presencev1"
	"github.com/baton-voice/baton/plugins/internal/protocol"
)

// Option configures how a plugin describes and checks itself.
type Option func(*options)

type options struct {
	name, version string
	caps          []string
	health        func(ctx context.Context) error
	selfTest      func(ctx context.Context) error
	stderr        io.Writer
}

// Name sets the plugin's name in logs and `baton plugins list`; the default
// is the binary's file name.
func Name(n string) Option { return func(o *options) { o.name = n } }

// Version sets the plugin's own version (not the protocol's).
func Version(v string) Option { return func(o *options) { o.version = v } }

// Capabilities lists what the plugin offers, free-form, shown by
// `baton plugins check`.
func Capabilities(c ...string) Option { return func(o *options) { o.caps = append(o.caps, c...) } }

// Health sets the check the host runs periodically (with its own
// deadline). An error marks the plugin unhealthy; after repeated failures
// the host restarts it.
func Health(f func(ctx context.Context) error) Option { return func(o *options) { o.health = f } }

// SelfTest sets the check `baton plugins check` runs.
func SelfTest(f func(ctx context.Context) error) Option { return func(o *options) { o.selfTest = f } }

// Logger returns a logger whose lines reach the host's slog, tagged with the
// plugin's name. Call it in main, before Serve*: it writes to the process's
// real stderr, which go-plugin replaces once serving starts.
func Logger(level slog.Level) *slog.Logger { return protocol.NewLogger(os.Stderr, level) }

func build(kind protocol.Kind, version int, opts []Option) (protocol.ServeConfig, options) {
	o := options{name: filepath.Base(os.Args[0]), version: "dev", stderr: os.Stderr}
	for _, f := range opts {
		f(&o)
	}
	return protocol.ServeConfig{
		Info: protocol.Info{
			Kind: kind, Version: version, Name: o.name, PluginVer: o.version,
			Capabilities: o.caps, Health: o.health, SelfTest: o.selfTest,
		},
		Stderr: o.stderr,
	}, o
}

// ServePolicy serves p as a transfer policy plugin (protocol policy v1)
// until the host stops the plugin. Decide gets the host's per-call deadline
// in its ctx.
func ServePolicy(p handoff.Policy, opts ...Option) {
	cfg, _ := build(protocol.KindPolicy, protocol.PolicyV1, opts)
	cfg.Register = func(s *grpc.Server) {
		policyv1.RegisterPolicyServer(s, &protocol.PolicyServer{Policy: p})
	}
	protocol.Serve(cfg)
}

// ServePresence serves s as a presence backend plugin (protocol presence
// v1) until the host stops the plugin, then closes s. s must honour the
// whole presence.Store contract (run p2p/presence/storetest on it).
func ServePresence(s presence.Store, opts ...Option) {
	cfg, _ := build(protocol.KindPresence, protocol.PresenceV1, opts)
	cfg.Register = func(g *grpc.Server) {
		presencev1.RegisterPresenceServer(g, &protocol.PresenceServer{Store: s})
	}
	protocol.Serve(cfg)
	_ = s.Close()
}

// PresenceOwnerEnv is the environment variable in which the host names the
// owner of the presence its plugin writes: one name per host (access
// server), kept across restarts of the plugin, so a restarted plugin
// carries on with the leases its predecessor held (presenceredis).
const PresenceOwnerEnv = "BATON_PRESENCE_OWNER"

// PresenceOwner returns the owner name the host gave a presence plugin, or
// "" when it gave none (the plugin then picks its own).
func PresenceOwner() string { return os.Getenv(PresenceOwnerEnv) }

// ServeCodecs serves cs as a codec plugin (protocol codec v1) until the
// host stops the plugin. Each call gets its own encoder and decoder from
// codecs.NewEncoder/NewDecoder (a codecs.Stateful codec keeps per-call
// state there), created and closed as the host asks; a decoder that
// implements codecs.Concealer serves the host's packet-loss concealment.
// All calls share one stream; its frames are worked on by GOMAXPROCS
// goroutines, each call's always on the same one, in order, so a call's
// Encoder and Decoder need no locking (the Codec values themselves are
// shared, as codecs.Codec requires).
//
// When the host passed the process a shared memory region (codec.proto,
// Region), the frames of a batch come and go through it instead of the
// stream; a plugin author does nothing for it.
func ServeCodecs(cs []codecs.Codec, opts ...Option) {
	cfg, _ := build(protocol.KindCodec, protocol.CodecV1, opts)
	srv := &protocol.CodecServer{Codecs: cs}
	if shm, err := protocol.OpenSharedMemory(); err == nil {
		srv.Shared = shm
	} else if !errors.Is(err, protocol.ErrNoSharedMemory) {
		// Served through the stream instead: slower, not broken.
		protocol.NewLogger(os.Stderr, slog.LevelInfo).Warn("codec batches go through the stream", "error", err)
	}
	cfg.Register = func(g *grpc.Server) {
		codecv1.RegisterCodecServer(g, srv)
	}
	protocol.Serve(cfg)
}
