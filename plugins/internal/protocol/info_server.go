package protocol

import (
	"context"

	"github.com/baton-voice/baton/plugins/internal/pb/pluginv1"
)

// Info is what a plugin says about itself, and its optional checks.
type Info struct {
	Kind         Kind
	Version      int // protocol version being served
	Name         string
	PluginVer    string
	Capabilities []string
	// Health and SelfTest may be nil (always healthy, nothing to test).
	Health   func(ctx context.Context) error
	SelfTest func(ctx context.Context) error
}

// InfoServer serves the Info service from an Info.
type InfoServer struct {
	pluginv1.UnimplementedInfoServer
	Info Info
}

// Describe implements pluginv1.InfoServer.
func (s *InfoServer) Describe(context.Context, *pluginv1.DescribeRequest) (*pluginv1.DescribeResponse, error) {
	return &pluginv1.DescribeResponse{
		Kind:            s.Info.Kind.String(),
		ProtocolVersion: uint32(s.Info.Version),
		Name:            s.Info.Name,
		Version:         s.Info.PluginVer,
		Capabilities:    s.Info.Capabilities,
		SdkVersion:      SDKVersion,
	}, nil
}

// Health implements pluginv1.InfoServer.
func (s *InfoServer) Health(ctx context.Context, _ *pluginv1.HealthRequest) (*pluginv1.HealthResponse, error) {
	if s.Info.Health != nil {
		if err := s.Info.Health(ctx); err != nil {
			return &pluginv1.HealthResponse{Ok: false, Detail: err.Error()}, nil
		}
	}
	return &pluginv1.HealthResponse{Ok: true}, nil
}

// SelfTest implements pluginv1.InfoServer.
func (s *InfoServer) SelfTest(ctx context.Context, _ *pluginv1.SelfTestRequest) (*pluginv1.SelfTestResponse, error) {
	if s.Info.SelfTest != nil {
		if err := s.Info.SelfTest(ctx); err != nil {
			return &pluginv1.SelfTestResponse{Ok: false, Detail: err.Error()}, nil
		}
	}
	return &pluginv1.SelfTestResponse{Ok: true, Detail: "ok"}, nil
}
