package plugins

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/plugins/internal/pb/codecv1"
	"github.com/baton-voice/baton/plugins/internal/pb/pluginv1"
	"github.com/baton-voice/baton/plugins/internal/pb/policyv1"
	"github.com/baton-voice/baton/plugins/internal/pb/presencev1"
	"github.com/baton-voice/baton/plugins/internal/protocol"
)

// Report is what Check found out about a plugin binary.
type Report struct {
	Path        string
	SHA256      string
	Description Description
	StartTime   time.Duration // process start to a described plugin
	Health      string        // "ok" or why not
	SelfTest    string        // "ok" or the plugin's detail
	Probe       string        // what the kind-specific probe did
}

// Check starts the plugin at cfg.Path as any kind, and runs: the handshake
// (protocol version negotiation), Describe, a health check, the plugin's
// self-test and a read-only probe of its kind (a policy Decide, a presence
// ListUser). The plugin is stopped before Check returns. Every failure is
// an error naming the step; a report is returned with what was learnt
// before it.
func Check(ctx context.Context, cfg Config) (Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Report{Path: cfg.Path}, err
	}
	rep := Report{Path: cfg.Path, SHA256: cfg.SHA256}
	t0 := time.Now()
	inst, err := launch(ctx, cfg, KindUnknown)
	if err != nil {
		return rep, err
	}
	defer inst.kill(true)
	rep.StartTime = time.Since(t0)
	rep.Description = inst.desc

	step := func(name string, f func(ctx context.Context) (string, error)) error {
		ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
		defer cancel()
		s, err := f(ctx)
		if err != nil {
			return fmt.Errorf("plugins: %s: %s: %w", cfg.Name, name, err)
		}
		switch name {
		case "health":
			rep.Health = s
		case "self-test":
			rep.SelfTest = s
		case "probe":
			rep.Probe = s
		}
		return nil
	}
	if err := step("health", func(ctx context.Context) (string, error) {
		r, err := inst.info.Health(ctx, &pluginv1.HealthRequest{})
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrUnhealthy, err)
		}
		if !r.GetOk() {
			return "", fmt.Errorf("%w: %s", ErrUnhealthy, r.GetDetail())
		}
		return "ok", nil
	}); err != nil {
		return rep, err
	}
	if err := step("self-test", func(ctx context.Context) (string, error) {
		r, err := inst.info.SelfTest(ctx, &pluginv1.SelfTestRequest{})
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrSelfTest, err)
		}
		if !r.GetOk() {
			return "", fmt.Errorf("%w: %s", ErrSelfTest, r.GetDetail())
		}
		return r.GetDetail(), nil
	}); err != nil {
		return rep, err
	}
	err = step("probe", func(ctx context.Context) (string, error) {
		switch inst.desc.Kind {
		case KindPolicy:
			req := handoff.Request{Kind: handoff.KindQuery, Requester: "baton-check/probe", Owner: "baton-check/owner"}
			r, err := policyv1.NewPolicyClient(inst.conn).Decide(ctx, protocol.RequestToPB(req))
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("Decide(query baton-check/probe -> baton-check/owner) = allow %v (%s)", r.GetAllow(), r.GetReason()), nil
		case KindPresence:
			r, err := presencev1.NewPresenceClient(inst.conn).ListUser(ctx, &presencev1.ListUserRequest{User: "baton-check"})
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("ListUser(baton-check) = %d entries", len(r.GetEntries())), nil
		case KindCodec:
			r, err := codecv1.NewCodecClient(inst.conn).List(ctx, &codecv1.ListRequest{})
			if err != nil {
				return "", err
			}
			var names []string
			for _, p := range r.GetCodecs() {
				d, err := protocol.DescriptorFromPB(p)
				if err != nil {
					return "", err
				}
				names = append(names, fmt.Sprintf("%s/%d/%d pt %d (PCM %d Hz)", d.Name, d.ClockRate, d.Channels, d.PayloadType, d.SampleRate))
			}
			if len(names) == 0 {
				return "", fmt.Errorf("the plugin serves no codec")
			}
			return "List = " + strings.Join(names, ", "), nil
		}
		return "no probe for kind " + inst.desc.Kind.String(), nil
	})
	return rep, err
}

// Listed is one file of a plugins directory.
type Listed struct {
	Path        string
	Description Description // valid when Err is nil
	Err         error
}

// List describes every executable regular file in dir, sorted by name, by
// starting each with a handshake for any kind and stopping it again. A
// file that is not a working plugin is listed with its error; List itself
// fails only when dir cannot be read.
func List(ctx context.Context, dir string, base Config) ([]Listed, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("plugins: list: %w", err)
	}
	var out []Listed
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
			continue
		}
		cfg := base
		cfg.Path, cfg.Name, cfg.SHA256 = p, "", ""
		l := Listed{Path: p}
		if cfg, err = cfg.withDefaults(); err != nil {
			l.Err = err
		} else if inst, err := launch(ctx, cfg, KindUnknown); err != nil {
			l.Err = err
		} else {
			l.Description = inst.desc
			inst.kill(true)
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}
