package main

import (
	"fmt"
	"net"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/baton-voice/baton/config"
	"github.com/baton-voice/baton/p2p/access"
	"github.com/baton-voice/baton/p2p/control"
	"github.com/baton-voice/baton/p2p/pki"
)

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
