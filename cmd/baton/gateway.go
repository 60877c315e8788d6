package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/config"
	"github.com/baton-voice/baton/gateway"
	"github.com/baton-voice/baton/p2p/control"
	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/sipbridge"
	"github.com/baton-voice/baton/sipbridge/sdp"
)

func newGatewayCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run the SIP gateway: SIP phones register and become P2P devices",
		Long: `Run the SIP bridge: a registrar with digest authentication and a B2BUA.
Each SIP account of the config is a P2P device (alice/desk): online in
presence while its phone is registered, called by P2P softphones
("baton ctl call alice/desk" rings the phone), and calling them
(sip:bob@GATEWAY reaches user bob, sip:bob+mobile@GATEWAY the device).
Media is anchored here: plain RTP toward the phone, SRTP toward P2P peers.
docs/sip.md shows how to connect baresip, linphone or a desk phone.`,
		Example: `  baton gateway --config docs/examples/gateway.yaml
  baton gateway ha1 --user alice --realm baton --password-file desk.password`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadGateway(source(cmd))
			if err != nil {
				return err
			}
			return runGateway(cmd.Context(), cmd, cfg)
		},
	}
	config.GatewayFlags(cmd.Flags())
	// Opt-in CPU and heap profiles for benchmarks (pprof.go); not a config
	// key, so that no file or environment turns it on by accident.
	cmd.Flags().String("pprof", "", "serve net/http/pprof on this loopback `host:port` (benchmarks only)")
	_ = cmd.Flags().MarkHidden("pprof")
	// The TLS path between two devices of the gateway, for benchmarks
	// that compare it with the in-process one (docs/host.md).
	cmd.Flags().Bool("no-local-shortcut", false, "P2P calls between two devices of this gateway go over TLS to its own listener (benchmarks only)")
	_ = cmd.Flags().MarkHidden("no-local-shortcut")
	cmd.AddCommand(newHA1Cmd())
	addGatewayCredentialCmds(cmd)
	return cmd
}

func newHA1Cmd() *cobra.Command {
	var user, realm, pwFile string
	cmd := &cobra.Command{
		Use:   "ha1",
		Short: "Print the digest HA1 of a SIP account, for the gateway's accounts list",
		Long: `Print MD5(user:realm:password), the digest secret the gateway stores for a
SIP account instead of its password (RFC 2617 §3.2.2.2). The realm must be
the gateway's sip.realm.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if user == "" || pwFile == "" {
				return errors.New("gateway ha1: --user and --password-file are required")
			}
			pw, err := readPasswordFile(pwFile)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), sipbridge.HA1(user, realm, pw))
			return nil
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "SIP user `name` (required)")
	cmd.Flags().StringVar(&realm, "realm", config.DefaultGateway().SIP.Realm, "digest `realm` (the gateway's sip.realm)")
	cmd.Flags().StringVar(&pwFile, "password-file", "", "`path` of a file holding the SIP password (required)")
	return cmd
}

// gatewayConfig builds the gateway's configuration; all holds the codecs
// to choose cfg.Codecs from (the built-in ones and the plugins').
func gatewayConfig(cfg config.Gateway, all *codecs.Registry) (gateway.Config, error) {
	roots, err := pki.LoadCAFile(cfg.CA)
	if err != nil {
		return gateway.Config{}, err
	}
	reg, err := all.Subset(cfg.Codecs)
	if err != nil {
		return gateway.Config{}, err
	}
	ip, err := netip.ParseAddr(cfg.Media.IP)
	if err != nil {
		return gateway.Config{}, fmt.Errorf("media.ip: %w", err)
	}
	sipSRTP, err := sdp.ParseSRTPMode(cfg.SIP.SRTP)
	if err != nil {
		return gateway.Config{}, fmt.Errorf("sip.srtp: %w", err)
	}
	gc := gateway.Config{
		Access: cfg.Access, Roots: roots,
		UDP: cfg.SIP.UDP, TCP: cfg.SIP.TCP, Advertise: cfg.SIP.Advertise, Realm: cfg.SIP.Realm,
		NonceTTL: cfg.SIP.NonceTTL, MinExpires: cfg.SIP.MinExpires, MaxExpires: cfg.SIP.MaxExpires,
		FailBurst: cfg.SIP.FailBurst, FailEvery: cfg.SIP.FailEvery, PickupCode: cfg.SIP.PickupCode,
		MediaIP: ip, SRTP: cfg.Media.SRTP, MediaTimeout: cfg.Media.Timeout, Codecs: reg,
		SIPSRTP:             sipSRTP,
		MaxPreAuthPerSource: cfg.Signal.MaxPreAuthPerSource, MaxPreAuth: cfg.Signal.MaxPreAuth,
		PreAuthTimeout: cfg.Signal.PreAuthTimeout,
	}
	if cfg.SIP.TLS != "" {
		cert, err := tls.LoadX509KeyPair(cfg.SIP.TLSCert, cfg.SIP.TLSKey)
		if err != nil {
			return gateway.Config{}, fmt.Errorf("sip.tls_cert %s, sip.tls_key %s: %w", cfg.SIP.TLSCert, cfg.SIP.TLSKey, err)
		}
		gc.TLS = cfg.SIP.TLS
		gc.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cr := cfg.Credential; cr.Gateway != "" {
		secret, err := readPasswordFile(cr.SecretFile)
		if err != nil {
			return gateway.Config{}, fmt.Errorf("credential.secret_file: %w", err)
		}
		gc.Credential = gateway.Credential{Name: cr.Gateway, Secret: secret}
	}
	for i, a := range cfg.Accounts {
		var pw string
		if a.PasswordFile != "" {
			if pw, err = readPasswordFile(a.PasswordFile); err != nil {
				return gateway.Config{}, fmt.Errorf("accounts[%d] (%s): %w", i, a.SIPUser, err)
			}
		}
		user, dev, _ := strings.Cut(a.Device, "/")
		gc.Accounts = append(gc.Accounts, gateway.Account{SIPUser: a.SIPUser, HA1: a.HA1, User: user, Device: dev, Password: pw, MaxCalls: a.MaxCalls})
	}
	for i, tc := range cfg.Trunks {
		t, err := gatewayTrunk(tc)
		if err != nil {
			return gateway.Config{}, fmt.Errorf("trunks[%d] (%s): %w", i, tc.Name, err)
		}
		gc.Trunks = append(gc.Trunks, t)
	}
	for _, r := range cfg.DialPlan {
		gc.DialPlan = append(gc.DialPlan, gateway.DialRule{Prefix: r.Prefix, Strip: r.Strip, Prepend: r.Prepend, Trunk: r.Trunk})
	}
	return gc, nil
}

func runGateway(ctx context.Context, cmd *cobra.Command, cfg config.Gateway) error {
	log := newLogger(cmd.ErrOrStderr(), cfg.Log)
	fallback := &codecFallback{}
	all, closeCodecs, err := loadCodecPlugins(ctx, cfg.Plugins, log, fallback)
	if err != nil {
		return err
	}
	// Deferred first, so it runs last: after the gateway and its calls.
	defer closeCodecs.Close()
	gc, err := gatewayConfig(cfg, all)
	if err != nil {
		return err
	}
	gc.Logger = log
	gc.NoLocalShortcut, _ = cmd.Flags().GetBool("no-local-shortcut")
	if a, _ := cmd.Flags().GetString("pprof"); a != "" {
		bound, stop, err := servePprof(ctx, a, log)
		if err != nil {
			return err
		}
		defer stop()
		fmt.Fprintf(cmd.OutOrStdout(), "gateway pprof %s\n", bound)
	}
	policy, closePolicy, err := loadPolicyPlugin(ctx, cfg.Plugins, log)
	if err != nil {
		return err
	}
	defer closePolicy.Close()
	gc.Policy = policy
	gw, err := gateway.New(gc)
	if err != nil {
		return err
	}
	// A dead codec plugin moves the devices' P2P calls to G.711
	// (codecfallback.go); the SIP legs follow, relaying or transcoding
	// per frame.
	fallback.attach(func() []codecSwitcher {
		var out []codecSwitcher
		for _, id := range gw.DeviceIDs() {
			if api, err := gw.DeviceAPI(id); err == nil {
				if s, ok := api.(codecSwitcher); ok {
					out = append(out, s)
				}
			}
		}
		return out
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := gw.Register(reg); err != nil {
		return err
	}
	var adminAddr string
	if cfg.Admin != "" {
		srv, err := control.Listen(ctx, cfg.Admin, control.Options{Status: func() any { return gw.Status() }, Gatherer: reg, Logger: log,
			Endpoints: gatewayEndpoints{gw},
			// The handoffs and transfers of every device (gateway/handofflog.go).
			Handoffs: func() any { return gw.Handoffs() },
			Handoff:  func(id string) (any, error) { return gw.Handoff(id) },
			Events:   gw.SubscribeEvents})
		if err != nil {
			return err
		}
		defer srv.Close()
		adminAddr = srv.Addr()
	}
	if err := gw.Start(ctx); err != nil {
		return err
	}
	defer gw.Close()
	if a := gw.Addr("tls"); a != "" {
		// Before the ready line, whose format scripts match.
		fmt.Fprintf(cmd.OutOrStdout(), "gateway sip tls %s\n", a)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "gateway ready: sip udp %s tcp %s, %d accounts, admin %s\n",
		orOff(gw.Addr("udp")), orOff(gw.Addr("tcp")), len(gc.Accounts), orOff(adminAddr))
	<-ctx.Done()
	log.Info("shutting down")
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func orOff(s string) string {
	if s == "" {
		return "off"
	}
	return s
}

// gatewayTrunk reads a trunk's password files and parses its addresses
// (the config has validated their form).
func gatewayTrunk(tc config.SIPTrunk) (gateway.Trunk, error) {
	var pw string
	var err error
	if tc.PasswordFile != "" {
		if pw, err = readPasswordFile(tc.PasswordFile); err != nil {
			return gateway.Trunk{}, err
		}
	}
	user, dev, _ := strings.Cut(tc.Device, "/")
	t := gateway.Trunk{Name: tc.Name, User: user, Device: dev, Password: pw, Route: tc.Route,
		Registrar: tc.Registrar, Proxy: tc.Proxy, AuthUser: tc.AuthUser, Expires: tc.Expires, Numbers: map[string]string{}}
	for _, a := range tc.Allow {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				return gateway.Trunk{}, fmt.Errorf("allow %q: %w", a, err)
			}
			p = netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())
		}
		t.Allow = append(t.Allow, p.Masked())
	}
	for _, n := range tc.Numbers {
		t.Numbers[n.Number] = n.To
	}
	if tc.AuthPasswordFile != "" {
		if t.AuthPassword, err = readPasswordFile(tc.AuthPasswordFile); err != nil {
			return gateway.Trunk{}, fmt.Errorf("auth_password_file: %w", err)
		}
	}
	return t, nil
}

// gatewayEndpoints serves the gateway's devices on the control API
// (/v1/endpoints/{user}/{device}/..., `baton ctl --endpoint alice/desk`).
type gatewayEndpoints struct{ gw *gateway.Gateway }

func (e gatewayEndpoints) Endpoint(id string) (endpoint.API, error) {
	api, err := e.gw.DeviceAPI(id)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", control.ErrNoSuchEndpoint, err)
	}
	return api, nil
}

func (e gatewayEndpoints) EndpointIDs() []string { return e.gw.DeviceIDs() }
