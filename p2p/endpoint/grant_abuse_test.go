package endpoint

import (
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/wire"
)

// Issue 11 §1 item 3: a device of the same user gets a real grant from B
// (the desk) and tells it to stop its audio, but never sends C (bob) any
// audio of its own, with or without re-establishing with C. B must not
// leave C in silence until its guard timer (6 s here, 10 s by default):
// C hears no gap longer than maxHandoffSilence, a bound made of the step
// 6 timer and packet times, not of how fast this machine is.
func TestGrantAbuseSilenceIsBounded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		reestablish bool // the abuser also presents the grant to C (step 7)
	}{
		{"stop-audio only", false},
		{"stop-audio and reestablish", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := newNetwork(t)
			bob, desk, id := deskCall(t, n)
			eventually(t, "bob to hear the desk", func() bool { return bob.mustCall(t, id).Media.Played > 25 })
			if g := bob.mustCall(t, id).Media.LongestGapMS; g != 0 {
				t.Logf("gap before the abuse: %v ms", g)
			}

			// The bound is on the desk's timers; a machine at load 20-30
			// can also deschedule the desk's process for hundreds of ms
			// (a 640 ms gap was seen once). The probe measures that
			// stall over the same window, and it is added to the limit.
			probe := startStallProbe()
			evil := n.rawLogin(t, "alice", "tablet")
			qc := n.rawQuery(t, evil, desk)
			list, ok := recvAny(t, qc).(*wire.SessionList)
			if !ok || len(list.Sessions) != 1 {
				t.Fatalf("session list %+v", list)
			}
			if err := qc.Send(&wire.StopAudio{CallID: id}, time.Second); err != nil {
				t.Fatal(err)
			}
			if m, ok := recvAny(t, qc).(*wire.StopAck); !ok {
				t.Fatalf("stop-audio answered %+v", m)
			}
			if tc.reestablish {
				c := n.rawDial(t, evil, bob)
				re := &wire.Reestablish{CallID: id, SignalAddr: "127.0.0.1:9", Grant: list.Sessions[0].Grant,
					Media: wire.Media{Addr: "127.0.0.1:9", SSRC: 77, PtimeMS: 20}}
				if err := c.Send(re, time.Second); err != nil {
					t.Fatal(err)
				}
				if m, ok := recvAny(t, c).(*wire.ReestablishAck); !ok {
					t.Fatalf("reestablish with a valid grant answered %+v", m)
				}
			}
			// The desk sends again by itself, and bob plays it.
			played := bob.mustCall(t, id).Media.Played
			eventually(t, "bob to hear the desk again", func() bool {
				info := bob.mustCall(t, id)
				return info.Peer == "alice/desk" && info.Media.Played > played+25 && info.Media.LongestGapMS > 0
			})
			info := bob.mustCall(t, id)
			stall := probe.stop()
			ptime := desk.cfg.Ptime
			bound := maxHandoffSilence(desk.timeouts, ptime)
			// Two packet times of slack for timer scheduling under -race,
			// plus the longest stall the machine imposed meanwhile.
			limit := bound + 2*ptime + stall
			t.Logf("longest gap at bob %v ms (bound %v, limit %v with a stall of %v), frames concealed %d, lost %d; desk: %+v",
				info.Media.LongestGapMS, bound, limit, stall, info.Media.Concealed, info.Media.Lost, *desk.mustCall(t, id).Media)
			if gap := time.Duration(info.Media.LongestGapMS * float64(time.Millisecond)); gap > limit {
				t.Errorf("bob heard %v of silence after a grant nobody used, want at most %v (%d packets of %v)",
					gap, limit, limit/ptime, ptime)
			}
			// The handoff never happened: the desk still has the call.
			if d := desk.mustCall(t, id); d.State != "active" {
				t.Errorf("desk's call %s", d.State)
			}
			stillUp(t, bob, id, "alice/desk")
		})
	}
}

// stallProbe measures how late the Go scheduler runs a 5 ms ticker's
// goroutine: the longest delay beyond the tick, over its lifetime. It is
// how long the machine kept this process from running, which no timer of
// the code under test can beat.
type stallProbe struct {
	done chan struct{}
	out  chan time.Duration
}

func startStallProbe() *stallProbe {
	p := &stallProbe{done: make(chan struct{}), out: make(chan time.Duration, 1)}
	go func() {
		const tick = 5 * time.Millisecond
		tk := time.NewTicker(tick)
		defer tk.Stop()
		var worst time.Duration
		last := time.Now()
		for {
			select {
			case <-p.done:
				p.out <- worst
				return
			case <-tk.C:
				run := time.Now()
				if late := run.Sub(last) - tick; late > worst {
					worst = late
				}
				last = run
			}
		}
	}()
	return p
}

func (p *stallProbe) stop() time.Duration {
	close(p.done)
	return <-p.out
}
