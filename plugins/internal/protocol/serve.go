package protocol

import (
	"context"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/baton-voice/baton/plugins/internal/pb/pluginv1"
)

// ServeConfig is what Serve needs from the SDK.
type ServeConfig struct {
	Info Info
	// Register adds the kind's own service; Serve adds Info.
	Register func(s *grpc.Server)
	// Stderr is where log lines go (the host reads them and bridges them
	// into its slog). It must be the process's real stderr captured before
	// go-plugin swaps os.Stderr for its stdio pipe.
	Stderr io.Writer
	// WatchdogInterval is how often the parent pid is checked; 0 means
	// DefaultWatchdogInterval.
	WatchdogInterval time.Duration
}

// DefaultWatchdogInterval is how often a plugin checks that its host is
// still its parent.
const DefaultWatchdogInterval = 250 * time.Millisecond

// Serve runs the plugin until the host stops it. It returns when the host
// asked the plugin to shut down; it exits the process itself when the host
// has gone (the parent pid changed: the host died, even by SIGKILL, and the
// plugin was reparented), so a plugin never outlives its host.
func Serve(cfg ServeConfig) {
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go watchdog(ctx, cfg.Stderr, cfg.WatchdogInterval)

	info := cfg.Info
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			info.Version: {info.Kind.String(): &GRPCPlugin{Register: func(s *grpc.Server) {
				pluginv1.RegisterInfoServer(s, &InfoServer{Info: info})
				cfg.Register(s)
			}}},
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return plugin.DefaultGRPCServer(append(opts, ServerOptions()...))
		},
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       info.Name,
			Level:      hclog.Info,
			Output:     cfg.Stderr,
			JSONFormat: true,
		}),
	})
}

// watchdog exits the process when its parent changes. The host also sets a
// parent-death signal (Linux), which covers the common case at once; this
// covers the rest (the forking thread is not the host's last one, other
// systems, a host that set no signal).
func watchdog(ctx context.Context, stderr io.Writer, every time.Duration) {
	if every <= 0 {
		every = DefaultWatchdogInterval
	}
	parent := os.Getppid()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if p := os.Getppid(); p != parent {
				NewLogger(stderr, slog.LevelInfo).Error("host process gone, exiting", "parent_pid", parent, "now_parent_pid", p)
				os.Exit(3)
			}
		}
	}
}

// NewLogger returns an slog logger writing JSON lines in the shape
// go-plugin's host parses (@level, @message, @timestamp), so every line
// reaches the host's slog with its level and attributes.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				a.Key = "@timestamp"
				if t, ok := a.Value.Any().(time.Time); ok {
					a.Value = slog.StringValue(t.Format("2006-01-02T15:04:05.000000Z07:00"))
				}
			case slog.LevelKey:
				a.Key = "@level"
				a.Value = slog.StringValue(hclogLevel(a.Value.Any()))
			case slog.MessageKey:
				a.Key = "@message"
			}
			return a
		},
	}))
}

func hclogLevel(v any) string {
	l, ok := v.(slog.Level)
	if !ok {
		return "info"
	}
	switch {
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	}
	return "error"
}
