// Package protocol is what the host (package plugins) and the SDK (package
// plugins/sdk) share: the go-plugin handshake, the kinds and their protocol
// versions, the go-plugin GRPCPlugin that carries each kind, and the
// conversions between Baton's types and the generated protobuf messages.
package protocol

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Handshake is the go-plugin handshake every Baton plugin answers. The
// cookie only tells a plugin binary that Baton started it (so running one
// by hand prints an explanation); it is not a secret. ProtocolVersion is
// unused: each kind negotiates its own version through VersionedPlugins.
var Handshake = plugin.HandshakeConfig{
	MagicCookieKey:   "BATON_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "baton-voice-plugin-7d3f0e2a",
}

// SDKVersion is reported by Describe: the version of the SDK a plugin was
// built with.
const SDKVersion = "0.1.0"

// Kind is what a plugin implements.
type Kind int

// Plugin kinds.
const (
	KindUnknown Kind = iota
	KindPolicy
	KindPresence
	KindCodec
)

// String returns the kind's name as written in config and on the wire.
func (k Kind) String() string {
	switch k {
	case KindPolicy:
		return "policy"
	case KindPresence:
		return "presence"
	case KindCodec:
		return "codec"
	}
	return "unknown"
}

// ParseKind is the inverse of String; anything else is KindUnknown.
func ParseKind(s string) Kind {
	switch s {
	case "policy":
		return KindPolicy
	case "presence":
		return KindPresence
	case "codec":
		return KindCodec
	}
	return KindUnknown
}

// Protocol versions, one sequence per kind. A new incompatible version gets
// a new number and a new generated package (policyv2...); the host keeps
// offering the old ones it still speaks. CodecV1 is in codec_server.go.
const (
	PolicyV1   = 1
	PresenceV1 = 1
)

// Versions lists the protocol versions the host speaks for kind, newest
// first.
func Versions(k Kind) []int {
	switch k {
	case KindCodec:
		return []int{CodecV1}
	case KindPolicy:
		return []int{PolicyV1}
	case KindPresence:
		return []int{PresenceV1}
	}
	return nil
}

// GRPCPlugin is the go-plugin Plugin of every kind: on the plugin side it
// registers the services Register adds; on the host side it hands back
// the gRPC connection, which the host wraps in the kind's client.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Register adds the kind's service and the Info service (plugin side
	// only; nil on the host).
	Register func(s *grpc.Server)
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer implements plugin.GRPCPlugin.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Register == nil {
		return fmt.Errorf("protocol: no services to register")
	}
	p.Register(s)
	return nil
}

// GRPCClient implements plugin.GRPCPlugin.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return c, nil
}

// HostPlugins is what the host offers for kind: each version it speaks,
// mapped to a plugin set with the one entry named after the kind. With
// KindUnknown it offers every kind's versions (`baton plugins check` does
// not know the kind in advance); the plugin's Describe answer then says
// which it is.
func HostPlugins(k Kind) map[int]plugin.PluginSet {
	out := make(map[int]plugin.PluginSet)
	kinds := []Kind{k}
	if k == KindUnknown {
		kinds = []Kind{KindPolicy, KindPresence, KindCodec}
	}
	for _, kk := range kinds {
		for _, v := range Versions(kk) {
			if out[v] == nil {
				out[v] = plugin.PluginSet{}
			}
			out[v][kk.String()] = &GRPCPlugin{}
		}
	}
	return out
}
