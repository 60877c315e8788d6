package access

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/presence"
	"github.com/baton-voice/baton/p2p/wire"
	"github.com/baton-voice/baton/plugins"
	"github.com/baton-voice/baton/plugins/plugintest"
	"github.com/baton-voice/baton/plugins/presenceredis"
	"github.com/baton-voice/baton/plugins/presenceredis/redistest"
)

var pluginBuilds plugintest.Builds

// sharedBackend opens the presence store of one of two access servers that
// share presence: each call returns the store for one more server.
type sharedBackend struct {
	name string
	open func(b *testing.B, server int) presence.Store
}

// sharedBackends are the three ways two access servers share presence
// (docs/plugins.md): one presence.Memory in this process (the baseline, only
// possible in a test), the Redis store in process, and the Redis store
// behind the presence-redis plugin (what `baton access` runs).
func sharedBackends() []sharedBackend {
	var prefixes atomic.Int64
	return []sharedBackend{
		{"memory", func() func(*testing.B, int) presence.Store {
			var mu sync.Mutex
			stores := map[*testing.B]presence.Store{}
			return func(b *testing.B, _ int) presence.Store {
				mu.Lock()
				defer mu.Unlock()
				if s, ok := stores[b]; ok {
					return s
				}
				m := presence.NewMemory()
				b.Cleanup(func() { _ = m.Close() })
				stores[b] = m
				return m
			}
		}()},
		{"redis", func() func(*testing.B, int) presence.Store {
			var mu sync.Mutex
			srvs := map[*testing.B]*redistest.Server{}
			prefix := map[*testing.B]string{}
			return func(b *testing.B, server int) presence.Store {
				mu.Lock()
				srv, ok := srvs[b]
				if !ok {
					srv = redistest.Start(b)
					srvs[b] = srv
					prefix[b] = fmt.Sprintf("bench%d:", prefixes.Add(1))
				}
				p := prefix[b]
				mu.Unlock()
				s, err := presenceredis.Open(context.Background(), presenceredis.Options{
					Addr: srv.Addr, Prefix: p, Owner: fmt.Sprintf("server%d", server), KeyspaceEvents: true})
				if err != nil {
					b.Fatalf("presenceredis.Open: %v", err)
				}
				b.Cleanup(func() { _ = s.Close() })
				return s
			}
		}()},
		{"redis-plugin", func() func(*testing.B, int) presence.Store {
			var mu sync.Mutex
			srvs := map[*testing.B]*redistest.Server{}
			prefix := map[*testing.B]string{}
			return func(b *testing.B, server int) presence.Store {
				mu.Lock()
				srv, ok := srvs[b]
				if !ok {
					srv = redistest.Start(b)
					srvs[b] = srv
					prefix[b] = fmt.Sprintf("bench%d:", prefixes.Add(1))
				}
				p := prefix[b]
				mu.Unlock()
				bin := pluginBuilds.Bin(b, "github.com/baton-voice/baton/plugins/cmd/presence-redis")
				c, err := plugins.LoadPresence(context.Background(), plugins.PresenceConfig{
					Config: plugins.Config{
						Path: bin, Args: []string{"-addr", srv.Addr, "-prefix", p},
						StartTimeout: time.Minute,
						Logger:       slog.New(slog.DiscardHandler),
					},
					Owner: fmt.Sprintf("server%d", server),
				})
				if err != nil {
					b.Fatalf("LoadPresence: %v", err)
				}
				b.Cleanup(func() { _ = c.Close() })
				return c
			}
		}()},
	}
}

// BenchmarkSharedPresence: two access servers share one presence space
// (issue 10 §4: presence through Redis against the memory store, in one
// run). "logins" logs n devices in, alternately at each server, 16 in
// flight, and reports logins/s. "fanout" has one user at server 0 with n
// buddies logged in at server 1; each iteration the user changes status
// and the latency runs until each buddy's OnPresence has it (p50/p99 over
// every iteration and buddy). The Redis cases need redis-server and skip
// without it.
//
//	go test -run '^$' -bench 'BenchmarkSharedPresence' -benchtime 20x ./p2p/access/
func BenchmarkSharedPresence(b *testing.B) {
	b.Cleanup(pluginBuilds.Cleanup)
	const n = 500
	for _, be := range sharedBackends() {
		b.Run(be.name+"/logins", func(b *testing.B) {
			envs := twoServers(b, be, n, false)
			var total time.Duration
			logins := 0
			for b.Loop() {
				start := time.Now()
				clients := loginMany(b, func(i int) ClientConfig {
					return envs[i%2].clientConfig(fmt.Sprintf("u%04d", i), "dev")
				}, n)
				total += time.Since(start)
				logins += n
				b.StopTimer()
				for _, c := range clients {
					_ = c.Close()
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(logins)/total.Seconds(), "logins/s")
		})
		b.Run(be.name+"/fanout", func(b *testing.B) {
			envs := twoServers(b, be, n, true)
			arrived := make([]atomic.Int64, n)
			var pending sync.WaitGroup
			var want atomic.Value // the status the buddies wait for
			want.Store(wire.StatusOnline)
			loginMany(b, func(i int) ClientConfig {
				cfg := envs[1].clientConfig(fmt.Sprintf("u%04d", i), "dev")
				cfg.OnPresence = func(d wire.Device) {
					if d.User == "center" && d.Status == want.Load().(wire.Status) {
						arrived[i].Store(time.Now().UnixNano())
						pending.Done()
					}
				}
				return cfg
			}, n)
			pending.Add(n)
			center := envs[0].login("center", "desk")
			pending.Wait()
			ctx := context.Background()
			statuses := [2]wire.Status{wire.StatusAway, wire.StatusOnline}
			var lat []time.Duration
			i := 0
			for b.Loop() {
				st := statuses[i%2]
				want.Store(st)
				pending.Add(n)
				start := time.Now()
				if err := center.SetStatus(ctx, st); err != nil {
					b.Fatal(err)
				}
				pending.Wait()
				for j := range arrived {
					lat = append(lat, time.Duration(arrived[j].Load()-start.UnixNano()))
				}
				i++
			}
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}

// twoServers starts two access servers on be, each with users u0000..u(n-1)
// and center (cheap password hashing); with buddies, every u is center's
// buddy.
func twoServers(b *testing.B, be sharedBackend, n int, buddies bool) [2]*testEnv {
	var envs [2]*testEnv
	for s := range 2 {
		store := be.open(b, s)
		envs[s] = newEnv(b, func(c *Config) { c.Store = store })
		e := envs[s]
		e.srv.db.params = cheapArgon
		ctx := context.Background()
		if err := e.srv.Users().AddUser(ctx, "center", password("center")); err != nil {
			b.Fatal(err)
		}
		for i := range n {
			u := fmt.Sprintf("u%04d", i)
			if err := e.srv.Users().AddUser(ctx, u, password(u)); err != nil {
				b.Fatal(err)
			}
			if buddies {
				if err := e.srv.Users().AddBuddy(ctx, "center", u); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	return envs
}
