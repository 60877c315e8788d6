package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/config"
	"github.com/baton-voice/baton/p2p/control"
	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/p2p/pki"
)

func newPhoneCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "phone",
		Short: "Run a P2P phone endpoint (user/device) with a control API",
		Long: `Run one P2P endpoint: log in to the access server, keep presence, accept and
place calls with direct signaling and direct SRTP audio. A tone or a WAV file
stands in for the microphone (--tone, --play) and --record writes what the
phone hears. Drive it with "baton ctl --admin ADDR ...".`,
		Example: `  baton phone --access 127.0.0.1:7000 --ca baton-data/ca.crt \
    --user alice --device laptop --password-file alice.pw \
    --admin 127.0.0.1:7081 --tone 440 --record alice.wav --auto-answer`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadPhone(source(cmd))
			if err != nil {
				return err
			}
			return runPhone(cmd.Context(), cmd, cfg)
		},
	}
	config.PhoneFlags(cmd.Flags())
	return cmd
}

// readPasswordFile reads a password file (first line, trimmed).
func readPasswordFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read password file: %w", err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimSpace(pw)
	if pw == "" {
		return "", fmt.Errorf("password file %s is empty", path)
	}
	return pw, nil
}

// phoneHostConfig is the phone's Host: its signaling listener, the
// pre-authentication caps on it and the address watcher.
func phoneHostConfig(cfg config.Phone, log *slog.Logger) endpoint.HostConfig {
	watch := cfg.Media.Watch
	if watch == 0 {
		watch = -1 // off
	}
	return endpoint.HostConfig{
		SignalListen:        cfg.Signal.Listen,
		MaxPreAuthPerSource: cfg.Signal.MaxPreAuthPerSource,
		MaxPreAuth:          cfg.Signal.MaxPreAuth,
		PreAuthTimeout:      cfg.Signal.PreAuthTimeout,
		AddrWatch:           watch,
		Logger:              log,
	}
}

// phoneEndpointConfig builds the endpoint's config; all holds every codec
// available (built-in and plugins'), of which cfg.Codecs picks. Its
// listener, caps and address watcher are the Host's (phoneHostConfig).
func phoneEndpointConfig(cfg config.Phone, all *codecs.Registry, log *slog.Logger) (endpoint.Config, error) {
	pw, err := readPasswordFile(cfg.PasswordFile)
	if err != nil {
		return endpoint.Config{}, err
	}
	roots, err := pki.LoadCAFile(cfg.CA)
	if err != nil {
		return endpoint.Config{}, err
	}
	reg, err := all.Subset(cfg.Codecs)
	if err != nil {
		return endpoint.Config{}, err
	}
	mediaIP, err := netip.ParseAddr(cfg.Media.IP)
	if err != nil {
		return endpoint.Config{}, fmt.Errorf("media.ip: %w", err)
	}
	src, err := sourceFactory(cfg.Audio.Tone, cfg.Audio.Play)
	if err != nil {
		return endpoint.Config{}, err
	}
	var fallback []netip.Addr
	for _, s := range cfg.Media.FallbackIPs {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return endpoint.Config{}, fmt.Errorf("media.fallback_ips: %w", err)
		}
		fallback = append(fallback, ip)
	}
	return endpoint.Config{
		Access:      cfg.Access,
		Roots:       roots,
		User:        cfg.User,
		Device:      cfg.Device,
		Password:    pw,
		MediaIP:     mediaIP,
		SRTP:        cfg.Media.SRTP,
		Codecs:      reg,
		Ptime:       cfg.Ptime,
		JitterDelay: cfg.Jitter.Delay,
		AutoAnswer:  cfg.AutoAnswer,
		MaxCalls:    cfg.MaxCalls,
		NewSource:   src,
		NewSink:     sinkFactory(cfg.Audio.Record, false, log),
		FallbackIPs: fallback,
	}, nil
}

func runPhone(ctx context.Context, cmd *cobra.Command, cfg config.Phone) error {
	log := newLogger(cmd.ErrOrStderr(), cfg.Log)
	fallback := &codecFallback{}
	all, closeCodecs, err := loadCodecPlugins(ctx, cfg.Plugins, log, fallback)
	if err != nil {
		return err
	}
	// Deferred first, so it runs last: after the endpoint (and its calls'
	// media, which hold per-call state in the plugins) is closed.
	defer closeCodecs.Close()
	ecfg, err := phoneEndpointConfig(cfg, all, log)
	if err != nil {
		return err
	}
	ecfg.Logger = log
	if ecfg.AcceptFrom, err = endpoint.ParseAcceptFrom(cfg.AcceptFrom); err != nil {
		return err
	}
	policy, closePolicy, err := loadPolicyPlugin(ctx, cfg.Plugins, log)
	if err != nil {
		return err
	}
	defer closePolicy.Close()
	if policy != nil {
		ecfg.Policy = policy
	}
	// A Host with one endpoint (issue 11 §3): the same code path as a
	// gateway's many; flags and output are those of a standalone phone.
	host, err := endpoint.NewHost(phoneHostConfig(cfg, log))
	if err != nil {
		return err
	}
	defer host.Close()
	ep, err := host.Add(ecfg)
	if err != nil {
		return err
	}
	fallback.attach(func() []codecSwitcher { return []codecSwitcher{ep} }) // codecfallback.go
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := ep.Register(reg); err != nil {
		return err
	}
	if err := host.Register(reg); err != nil {
		return err
	}
	// The control API binds before the login, so a taken admin port fails
	// before buddies ever see this phone online.
	var adminAddr string
	if cfg.Admin != "" {
		srv, err := control.Listen(ctx, cfg.Admin, control.Options{Endpoint: ep, Gatherer: reg, Logger: log})
		if err != nil {
			return err
		}
		defer srv.Close()
		adminAddr = srv.Addr()
	}
	if err := host.Start(ctx); err != nil {
		return err
	}
	if err := ep.Start(ctx); err != nil {
		return err
	}
	defer ep.Close()
	if adminAddr != "" {
		fmt.Fprintf(cmd.OutOrStdout(), "phone %s ready: signaling %s, admin %s\n", ep.Identity(), ep.SignalAddr(), adminAddr)
	} else {
		fmt.Fprintf(cmd.OutOrStdout(), "phone %s ready: signaling %s\n", ep.Identity(), ep.SignalAddr())
	}
	<-ctx.Done()
	log.Info("shutting down")
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
