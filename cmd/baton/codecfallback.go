package main

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/baton-voice/baton/config"
	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/plugins"
)

// codecSwitcher is an endpoint whose calls can switch codec in the call
// (*endpoint.Endpoint).
type codecSwitcher interface {
	Calls() []endpoint.CallInfo
	SwitchCodec(ctx context.Context, id, codec, reason string) error
}

// codecFallback moves a phone's (or a gateway's devices') calls off a
// codec plugin that died (issue 10 §3, docs/plugins.md "Fallback"): on the plugin's outage
// (plugins.CodecConfig.OnOutage) every active call on one of its codecs
// switches to the configured built-in codec (plugins.codecs[].fallback,
// PCMU by default) with an in-call media update (docs/protocol.md §17),
// unless the plugin is back within fallback_after. A restart takes longer
// than the 200 ms a call may go without audio (docs/benchmarks.md), so by
// default the switch is made at once. Calls stay on G.711 afterwards.
type codecFallback struct {
	log   *slog.Logger
	rules []config.CodecPlugin

	mu      sync.Mutex
	targets func() []codecSwitcher // the endpoints whose calls fall back
	clients []*plugins.CodecClient // by plugins.codecs index
}

// attach sets the endpoints whose calls fall back: a phone's one, or a
// gateway's devices as they are at the outage.
func (f *codecFallback) attach(targets func() []codecSwitcher) {
	f.mu.Lock()
	f.targets = targets
	f.mu.Unlock()
}

func (f *codecFallback) setClient(i int, c *plugins.CodecClient) {
	f.mu.Lock()
	for len(f.clients) <= i {
		f.clients = append(f.clients, nil)
	}
	f.clients[i] = c
	f.mu.Unlock()
}

// onOutage runs on plugin i's notifier goroutine.
func (f *codecFallback) onOutage(i int, o plugins.Outage) {
	rule := f.rules[i]
	to := rule.FallbackCodec()
	log := f.log.With("component", "codec-fallback", "plugin", o.Plugin, "codecs", o.Codecs)
	if to == "" {
		log.Warn("codec plugin down; fallback off, calls wait for its restart", "error", o.Err)
		return
	}
	if rule.FallbackAfter > 0 {
		time.Sleep(rule.FallbackAfter)
		f.mu.Lock()
		c := f.clients[i]
		f.mu.Unlock()
		if c != nil && c.Up() {
			log.Info("codec plugin back within fallback_after; calls keep their codec", "after", rule.FallbackAfter)
			return
		}
	}
	f.mu.Lock()
	targets := f.targets
	f.mu.Unlock()
	if targets == nil {
		return
	}
	for _, ep := range targets() {
		f.fallBack(log, ep, o, to)
	}
}

// fallBack switches ep's active calls on o's codecs to codec to.
func (f *codecFallback) fallBack(log *slog.Logger, ep codecSwitcher, o plugins.Outage, to string) {
	for _, ci := range ep.Calls() {
		if ci.State != endpoint.CallActive.String() || !slices.Contains(o.Codecs, ci.Codec) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := ep.SwitchCodec(ctx, ci.ID, to, "codec-fallback")
		cancel()
		if err != nil {
			log.Warn("codec fallback failed; the call waits for the plugin's restart", "call_id", ci.ID, "to", to, "error", err)
			continue
		}
		log.Info("call fell back to a built-in codec", "call_id", ci.ID, "from", ci.Codec, "to", to,
			"since_outage", time.Since(o.At).Round(time.Millisecond), "error", o.Err)
	}
}
