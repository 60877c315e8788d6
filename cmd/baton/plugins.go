package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/config"
	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/plugins"
)

func newPluginsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "List and check out-of-process plugins (codecs, presence backends, transfer policies)",
		Long: `Baton runs codecs, presence backends and transfer policies as separate plugin
processes (docs/plugins.md). "list" starts every executable in a directory for
a handshake and shows what each one is; "check" runs one plugin through its
handshake, description, health check, self-test and a probe of its kind.`,
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:     "list DIR",
			Short:   "Describe every plugin binary in DIR",
			Example: "  baton plugins list /usr/lib/baton/plugins",
			Args:    cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				ls, err := plugins.List(cmd.Context(), args[0], plugins.Config{})
				if err != nil {
					return err
				}
				if len(ls) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "no executable files in %s\n", args[0])
					return nil
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "FILE\tKIND\tPROTOCOL\tNAME\tVERSION\tSTATUS")
				bad := 0
				for _, l := range ls {
					if l.Err != nil {
						bad++
						fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t%v\n", l.Path, l.Err)
						continue
					}
					d := l.Description
					fmt.Fprintf(tw, "%s\t%s\tv%d\t%s\t%s\tok\n", l.Path, d.Kind, d.ProtocolVersion, d.Name, d.Version)
				}
				tw.Flush()
				if bad > 0 {
					return fmt.Errorf("plugins: %d of %d files in %s are not working plugins", bad, len(ls), args[0])
				}
				return nil
			},
		},
		&cobra.Command{
			Use:   "check PATH [-- ARGS...]",
			Short: "Start one plugin and run its handshake, health check, self-test and a probe",
			Example: `  baton plugins check ./policy-rules -- -rules policy.yaml
  baton plugins check /usr/lib/baton/plugins/presence-redis -- -addr 127.0.0.1:6379`,
			Args: cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				rep, err := plugins.Check(cmd.Context(), plugins.Config{Path: args[0], Args: args[1:]})
				printReport(cmd.OutOrStdout(), rep)
				return err
			},
		},
	)
	return cmd
}

// printReport prints what plugins.Check learnt, as far as it got.
func printReport(w io.Writer, r plugins.Report) {
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-12s %s\n", k+":", v)
		}
	}
	line("path", r.Path)
	line("sha256", r.SHA256)
	if d := r.Description; d.Name != "" {
		line("kind", fmt.Sprintf("%s (protocol v%d)", d.Kind, d.ProtocolVersion))
		line("name", d.Name)
		line("version", d.Version)
		line("sdk", d.SDKVersion)
		line("capabilities", strings.Join(d.Capabilities, ", "))
		line("start time", r.StartTime.Round(100_000).String())
	}
	line("health", r.Health)
	line("self-test", r.SelfTest)
	line("probe", r.Probe)
}

// loadPolicyPlugin starts the transfer policy plugin pl configures. It
// returns nil, a no-op closer and no error when none is configured (the
// endpoint keeps its built-in same-user policy).
func loadPolicyPlugin(ctx context.Context, pl config.Plugins, log *slog.Logger) (handoff.Policy, io.Closer, error) {
	pp := pl.Policy
	if pp.Path == "" {
		return nil, io.NopCloser(nil), nil
	}
	mode, err := plugins.ParseFailMode(pp.FailMode)
	if err != nil {
		return nil, nil, err
	}
	return plugins.LoadPolicy(ctx, plugins.PolicyConfig{
		Config:      plugins.Config{Path: pl.Resolve(pp.Path), Args: pp.Args, SHA256: strings.ToLower(pp.SHA256), Logger: log},
		CallTimeout: pp.Timeout,
		FailMode:    mode,
	})
}

// loadCodecPlugins starts the configured codec plugins and returns a
// registry of the built-in codecs followed by the plugins' ones (each
// registered from the descriptor the plugin sent, so it negotiates like a
// built-in codec), and the closer that stops the plugins.
//
// fb, when not nil, gets each plugin's outages and moves the calls of the
// endpoints attached to it to the fallback codec (codecfallback.go).
func loadCodecPlugins(ctx context.Context, pl config.Plugins, log *slog.Logger, fb *codecFallback) (*codecs.Registry, io.Closer, error) {
	reg := codecs.DefaultRegistry()
	var cl closers
	for i, c := range pl.Codecs {
		cc := plugins.CodecConfig{
			Config:       plugins.Config{Path: pl.Resolve(c.Path), Args: c.Args, SHA256: strings.ToLower(c.SHA256), Logger: log},
			FrameTimeout: c.FrameTimeout,
		}
		if fb != nil {
			fb.log, fb.rules = log, pl.Codecs
			cc.OnOutage = func(o plugins.Outage) { fb.onOutage(i, o) }
		}
		client, err := plugins.NewCodecClient(ctx, cc)
		if err != nil {
			_ = cl.Close()
			return nil, nil, fmt.Errorf("plugins.codecs[%d]: %w", i, err)
		}
		if fb != nil {
			fb.setClient(i, client)
		}
		cl = append(cl, client)
		for _, cd := range client.Codecs() {
			if err := reg.Register(cd); err != nil {
				_ = cl.Close()
				return nil, nil, fmt.Errorf("plugins.codecs[%d]: %w", i, err)
			}
			d := cd.Descriptor()
			log.Info("codec plugin loaded", "codec", d.Name, "payload_type", d.PayloadType, "clock_rate", d.ClockRate,
				"channels", d.Channels, "sample_rate", d.SampleRate, "fmtp", d.Fmtp)
		}
	}
	return reg, cl, nil
}

// closers closes several io.Closers, last first.
type closers []io.Closer

func (cs closers) Close() error {
	var errs []error
	for i := len(cs) - 1; i >= 0; i-- {
		errs = append(errs, cs[i].Close())
	}
	return errors.Join(errs...)
}
