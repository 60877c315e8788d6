package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/baton-voice/baton/config"
	"github.com/baton-voice/baton/p2p/access"
	"github.com/baton-voice/baton/p2p/control"
	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/presence"
	"github.com/baton-voice/baton/plugins"
)

// loadPresencePlugin starts the presence backend plugin pp configures; nil
// (and no error) when none is, and the server keeps its in-memory store.
func loadPresencePlugin(ctx context.Context, pp config.PresencePlugin, log *slog.Logger) (presence.Store, error) {
	if pp.Path == "" {
		return nil, nil
	}
	c, err := plugins.LoadPresence(ctx, plugins.PresenceConfig{
		Config:      plugins.Config{Path: pp.Path, Args: pp.Args, SHA256: strings.ToLower(pp.SHA256), Logger: log},
		CallTimeout: pp.Timeout,
		Owner:       pp.Owner,
	})
	if err != nil {
		return nil, fmt.Errorf("presence plugin: %w", err)
	}
	d := c.Supervisor().Description()
	log.Info("presence backend plugin loaded", "plugin", d.Name, "version", d.Version, "pid", c.Supervisor().PID())
	return c, nil
}

func newAccessCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "access",
		Short: "Run the access server (login, credentials, presence)",
		Long: `Run the access server. On first run it creates its CA in the data directory
(ca.crt is what endpoints trust: give it to "baton phone --ca"). Users live in
the data directory's users.db; manage them with "baton user" and "baton buddy".
The access server is never on the call path.`,
		Example: `  baton user add alice --data-dir baton-data < alice.pw
  baton access --data-dir baton-data --listen 127.0.0.1:7000 --admin 127.0.0.1:7080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadAccess(source(cmd))
			if err != nil {
				return err
			}
			log := newLogger(cmd.ErrOrStderr(), cfg.Log)
			ctx := cmd.Context()
			store, err := loadPresencePlugin(ctx, cfg.Presence.Plugin, log)
			if err != nil {
				return err
			}
			if store != nil {
				// Deferred before srv.Close, so it runs after it: the
				// server marks its endpoints offline through the plugin.
				defer store.Close()
			}
			srv, err := access.NewServer(ctx, access.Config{
				DataDir:       cfg.DataDir,
				ServerNames:   cfg.ServerNames,
				CredentialTTL: cfg.CredentialTTL,
				Keepalive:     cfg.Presence.Keepalive,
				Timeout:       cfg.Presence.Timeout,
				LoginTimeout:  cfg.Limits.LoginTimeout,
				Limits: access.Limits{
					SourceFailBurst:     cfg.Limits.SourceFailBurst,
					SourceFailInterval:  cfg.Limits.SourceFailInterval,
					UserFailBurst:       cfg.Limits.UserFailBurst,
					UserFailInterval:    cfg.Limits.UserFailInterval,
					MaxTracked:          cfg.Limits.MaxTracked,
					Trusted:             cfg.Limits.TrustedPrefixes(),
					MaxPendingPerSource: cfg.Limits.MaxPendingPerSource,
					MaxPending:          cfg.Limits.MaxPending,
					MaxLoginFrame:       cfg.Limits.MaxLoginFrame,
				},
				Store:  store,
				Logger: log,
			})
			if err != nil {
				return err
			}
			defer srv.Close()
			ln, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			if err := srv.Register(reg); err != nil {
				return err
			}
			if cfg.Admin != "" {
				adm, err := control.Listen(ctx, cfg.Admin, control.Options{
					Status:   func() any { return srv.Status() },
					Gatherer: reg,
					Logger:   log,
				})
				if err != nil {
					return err
				}
				defer adm.Close()
			}
			caPath := filepath.Join(cfg.DataDir, pki.CACertFile)
			log.Info("access server listening", "listen", ln.Addr().String(), "ca", caPath, "ca_sha256", srv.CA().Fingerprint())
			fmt.Fprintf(cmd.OutOrStdout(), "access server on %s; endpoints trust %s (sha256 %s)\n", ln.Addr(), caPath, srv.CA().Fingerprint())
			return srv.Serve(ctx, ln)
		},
	}
	config.AccessFlags(cmd.Flags())
	return cmd
}
