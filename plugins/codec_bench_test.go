package plugins

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/media"
	"github.com/baton-voice/baton/plugins/plugintest"
)

// Benchmarks behind docs/benchmarks.md, "Codec plugins". A "frame" is one
// call's work per 20 ms tick: one Encode and one Decode of 20 ms of audio.
// CPU is the host's and the plugin process's together (ProcessCPU), so
// the plugin's costs are charged, not hidden in another process.

func benchCodecClient(b *testing.B, linger time.Duration) (*CodecClient, map[string]codecs.Codec) {
	b.Helper()
	return benchCodecClientWire(b, linger, false)
}

// benchCodecClientWire is benchCodecClient with batches through the
// stream (stream) or, the default, the shared memory region.
func benchCodecClientWire(b *testing.B, linger time.Duration, stream bool) (*CodecClient, map[string]codecs.Codec) {
	b.Helper()
	cfg := CodecConfig{Config: Config{Path: builds.Bin(b, pkgTest), Args: []string{"-mode", "codec"}}, FrameTimeout: time.Second, Linger: linger, NoSharedMemory: stream}
	c, err := NewCodecClient(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	m := map[string]codecs.Codec{}
	for _, cd := range c.Codecs() {
		m[cd.Descriptor().Name] = cd
	}
	return c, m
}

// cpuMeter measures host + plugin CPU over an interval.
type cpuMeter struct {
	pid        int
	host, plug time.Duration
	wall       time.Time
}

func startCPU(b *testing.B, pid int) *cpuMeter {
	b.Helper()
	m := &cpuMeter{pid: pid, wall: time.Now()}
	var err error
	if m.host, err = plugintest.ProcessCPU(0); err != nil {
		b.Fatal(err)
	}
	if m.plug, err = plugintest.ProcessCPU(pid); err != nil {
		b.Fatal(err)
	}
	return m
}

// stop returns host and plugin CPU used, and the wall time.
func (m *cpuMeter) stop(b *testing.B) (host, plug, wall time.Duration) {
	b.Helper()
	h, err := plugintest.ProcessCPU(0)
	if err != nil {
		b.Fatal(err)
	}
	p, err := plugintest.ProcessCPU(m.pid)
	if err != nil {
		b.Fatal(err)
	}
	return h - m.host, p - m.plug, time.Since(m.wall)
}

// g711Frame is the in-process cost of one frame (encode + decode of 160
// samples of PCMU), the codec work subtracted from the plugin's cost.
func g711Frame(b *testing.B) time.Duration {
	b.Helper()
	pcm, payload, out := toneFrame(0), make([]byte, 160), make([]int16, 160)
	c := codecs.PCMU()
	const n = 200000
	t0 := time.Now()
	for range n {
		k, _ := c.Encode(payload, pcm)
		_, _ = c.Decode(out, payload[:k])
	}
	return time.Since(t0) / n
}

// BenchmarkCodecFrame compares one frame through the G.711 codec in
// process with the same frame through the test plugin's G.711, with
// `calls` goroutines running frames back to back (so batches fill up
// to about that many frames). Metrics: cpu-us/frame is host + plugin CPU
// per frame; overhead-us/frame subtracts the codec's own work (the
// in-process cost, done once in the plugin); frames/batch is the mean
// batch size.
func BenchmarkCodecFrame(b *testing.B) {
	b.Run("inprocess/PCMU", func(b *testing.B) {
		pcm, payload, out := toneFrame(0), make([]byte, 160), make([]int16, 160)
		enc, _ := codecs.NewEncoder(codecs.PCMU())
		dec, _ := codecs.NewDecoder(codecs.PCMU())
		b.ReportAllocs()
		for b.Loop() {
			k, _ := enc.Encode(payload, pcm)
			_, _ = dec.Decode(out, payload[:k])
		}
	})
	for _, calls := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("plugin/PCMU/calls=%d", calls), func(b *testing.B) {
			work := g711Frame(b)
			c, m := benchCodecClient(b, -1) // back to back: no linger needed
			pcmu := m["PCMU"]
			s0 := c.Stats()
			var left atomic.Int64
			left.Store(int64(b.N))
			var wg sync.WaitGroup
			meter := startCPU(b, c.Supervisor().PID())
			b.ResetTimer()
			for range calls {
				wg.Go(func() {
					enc, _ := codecs.NewEncoder(pcmu)
					dec, _ := codecs.NewDecoder(pcmu)
					defer enc.Close()
					defer dec.Close()
					pcm, payload, out := toneFrame(0), make([]byte, 160), make([]int16, 160)
					for left.Add(-1) >= 0 {
						k, err := enc.Encode(payload, pcm)
						if err != nil {
							b.Error(err)
							return
						}
						if _, err := dec.Decode(out, payload[:k]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			host, plug, _ := meter.stop(b)
			s := c.Stats()
			cpu := float64(host+plug) / float64(b.N) / float64(time.Microsecond)
			b.ReportMetric(cpu, "cpu-us/frame")
			b.ReportMetric(cpu-float64(work)/float64(time.Microsecond), "overhead-us/frame")
			b.ReportMetric(float64(plug)/float64(host+plug), "plugin-share")
			b.ReportMetric(float64(s.Frames-s0.Frames)/float64(s.Batches-s0.Batches), "frames/batch")
		})
	}
}

// BenchmarkCodecBatch is BenchmarkCodecFrame through the batch seam
// (codecs.BatchCodec.Batch): one goroutine, like a shared tick, hands all
// `calls` calls' frames of a tick to the plugin in one Batch (each call's
// encode and the decode of its previous frame), and waits once. Same
// metrics as BenchmarkCodecFrame, per frame (one encode + one decode).
//
// plugin/ sends the batches through the shared memory region (the
// default); stream/ through the gRPC stream (CodecConfig.NoSharedMemory,
// what a plugin from before the region gets).
func BenchmarkCodecBatch(b *testing.B) {
	for _, wire := range []string{"plugin", "stream"} {
		for _, calls := range []int{1, 100, 1000, 2000} {
			b.Run(fmt.Sprintf("%s/PCMU/calls=%d", wire, calls), func(b *testing.B) {
				benchCodecBatch(b, calls, wire == "stream")
			})
		}
	}
}

func benchCodecBatch(b *testing.B, calls int, stream bool) {
	work := g711Frame(b)
	c, m := benchCodecClientWire(b, -1, stream)
	pcmu := m["PCMU"].(codecs.BatchCodec)
	pcm := toneFrame(0)
	jobs := make([]codecs.Job, 0, 2*calls)
	payloads := make([][]byte, calls)
	for i := range calls {
		enc, _ := codecs.NewEncoder(pcmu)
		dec, _ := codecs.NewDecoder(pcmu)
		b.Cleanup(func() { _ = enc.Close(); _ = dec.Close() })
		payloads[i] = make([]byte, 160)
		jobs = append(jobs,
			codecs.Job{Op: codecs.JobEncode, Enc: enc, PCM: pcm, Payload: make([]byte, 160)},
			codecs.Job{Op: codecs.JobDecode, Dec: dec, PCM: make([]int16, 160), Payload: payloads[i]})
	}
	pcmu.Batch(jobs) // open the states
	s0 := c.Stats()
	meter := startCPU(b, c.Supervisor().PID())
	b.ResetTimer()
	rounds := 0
	for done := 0; done < b.N; done += calls {
		pcmu.Batch(jobs)
		for i := range calls {
			if err := errors.Join(jobs[2*i].Err, jobs[2*i+1].Err); err != nil {
				b.Fatal(err)
			}
			copy(payloads[i], jobs[2*i].Payload[:jobs[2*i].N])
		}
		rounds++
	}
	b.StopTimer()
	host, plug, _ := meter.stop(b)
	s := c.Stats()
	frames := float64(rounds * calls)
	cpu := float64(host+plug) / frames / float64(time.Microsecond)
	b.ReportMetric(cpu, "cpu-us/frame")
	b.ReportMetric(cpu-float64(work)/float64(time.Microsecond), "overhead-us/frame")
	b.ReportMetric(float64(plug)/float64(host+plug), "plugin-share")
	b.ReportMetric(float64(s.Frames-s0.Frames)/2/float64(s.Batches-s0.Batches), "frames/batch")
}

// BenchmarkCodecPluginCalls runs `calls` concurrent calls through one
// plugin process for 3 s, each paced like a media session: at its own
// phase, every 20 ms, it encodes and decodes a frame (PCMU in the test
// plugin). Lateness is when the frame's work finished minus when its tick
// was due; the target is p99 < 10 ms. cpu-us/frame is host + plugin CPU
// per frame; cores is that CPU over wall time.
//
// inprocess runs the same paced calls with the in-process PCMU: its
// cpu-us/frame is the harness (timers, goroutines) plus G.711, the
// baseline to subtract from the plugin's.
func BenchmarkCodecPluginCalls(b *testing.B) {
	for _, calls := range []int{10, 500, 1000, 2000} {
		b.Run(fmt.Sprintf("inprocess/PCMU/calls=%d", calls), func(b *testing.B) {
			benchPacedCalls(b, nil, codecs.PCMU(), calls, 3*time.Second)
		})
		for _, linger := range []time.Duration{-1, time.Millisecond, 2 * time.Millisecond} {
			b.Run(fmt.Sprintf("plugin/PCMU/linger=%v/calls=%d", max(linger, 0), calls), func(b *testing.B) {
				c, m := benchCodecClient(b, linger)
				benchPacedCalls(b, c, m["PCMU"], calls, 3*time.Second)
			})
		}
		b.Run(fmt.Sprintf("batch/PCMU/calls=%d", calls), func(b *testing.B) {
			c, m := benchCodecClient(b, 0)
			benchPacedCalls(b, c, m["PCMU"], calls, 3*time.Second)
		})
		b.Run(fmt.Sprintf("batch-stream/PCMU/calls=%d", calls), func(b *testing.B) {
			c, m := benchCodecClientWire(b, 0, true)
			benchPacedCalls(b, c, m["PCMU"], calls, 3*time.Second)
		})
	}
}

// benchPacedCalls runs the paced calls; c is nil for an in-process codec.
func benchPacedCalls(b *testing.B, c *CodecClient, codec codecs.Codec, calls int, dur time.Duration) {
	const tick = 20 * time.Millisecond
	ticks := int(dur / tick)
	pid := os.Getpid()
	stats := func() CodecStats { return CodecStats{} }
	if c != nil {
		pid, stats = c.Supervisor().PID(), c.Stats
	}
	for b.Loop() {
		s0 := stats()
		late := make([][]time.Duration, calls)
		var failed atomic.Int64
		var wg sync.WaitGroup
		start := time.Now().Add(100 * time.Millisecond)
		meter := startCPU(b, pid)
		bc, batch := codec.(codecs.BatchCodec)
		for i := range calls {
			phase := time.Duration(rand.Int64N(int64(tick)))
			if batch {
				wg.Go(func() { late[i] = batchPacedCall(bc, i, ticks, &failed) })
				continue
			}
			wg.Go(func() {
				enc, _ := codecs.NewEncoder(codec)
				dec, _ := codecs.NewDecoder(codec)
				defer enc.Close()
				defer dec.Close()
				pcm, payload, out := toneFrame(i), make([]byte, 400), make([]int16, 200)
				lat := make([]time.Duration, 0, ticks)
				for k := range ticks {
					due := start.Add(phase + time.Duration(k)*tick)
					time.Sleep(time.Until(due))
					n, err := enc.Encode(payload, pcm)
					if err == nil {
						_, err = dec.Decode(out, payload[:n])
					}
					if err != nil {
						failed.Add(1)
					}
					lat = append(lat, time.Since(due))
				}
				late[i] = lat
			})
		}
		wg.Wait()
		host, plug, wall := meter.stop(b)
		if c == nil {
			plug = 0 // pid is this process: counted in host already
		}
		all := slices.Concat(late...)
		slices.Sort(all)
		q := func(p float64) float64 {
			return float64(all[int(p*float64(len(all)-1))]) / float64(time.Millisecond)
		}
		s := stats()
		frames := float64(calls * ticks)
		b.ReportMetric(q(0.5), "p50-ms")
		b.ReportMetric(q(0.99), "p99-ms")
		b.ReportMetric(q(1), "max-ms")
		b.ReportMetric(float64(failed.Load()), "failed")
		b.ReportMetric(float64(host+plug)/frames/float64(time.Microsecond), "cpu-us/frame")
		b.ReportMetric(float64(host+plug)/float64(wall), "cores")
		b.ReportMetric(float64(s.Frames-s0.Frames)/float64(max(1, s.Batches-s0.Batches)), "frames/batch")
	}
}

// batchPacedCall is one paced call on the codec's shared Ticker, the way
// a media session on a batch codec runs (p2p/media batch.go): each tick
// it hands in its encode and the decode of its previous frame together.
// It returns each tick's lateness.
func batchPacedCall(codec codecs.BatchCodec, i, ticks int, failed *atomic.Int64) []time.Duration {
	const tick = 20 * time.Millisecond
	enc, _ := codecs.NewEncoder(codec)
	dec, _ := codecs.NewDecoder(codec)
	defer enc.Close()
	defer dec.Close()
	tc := codec.Ticker(tick).Join()
	defer tc.Leave()
	pcm, payload, prev, out := toneFrame(i), make([]byte, 400), make([]byte, 400), make([]int16, 200)
	jobs := make([]codecs.Job, 2)
	prevN := 0
	lat := make([]time.Duration, 0, ticks)
	for range ticks {
		due := <-tc.C
		jobs = append(jobs[:0], codecs.Job{Op: codecs.JobEncode, Enc: enc, PCM: pcm, Payload: payload})
		if prevN > 0 {
			jobs = append(jobs, codecs.Job{Op: codecs.JobDecode, Dec: dec, PCM: out, Payload: prev[:prevN]})
		}
		tc.Do(jobs)
		for _, j := range jobs {
			if j.Err != nil {
				failed.Add(1)
			}
		}
		prevN = copy(prev, payload[:jobs[0].N])
		lat = append(lat, time.Since(due))
	}
	return lat
}

// BenchmarkCodecPluginSessions runs the batch path where it is used: `calls`
// real media sessions (p2p/media, in pairs over loopback UDP) on the test
// plugin's PCMU, each sending a tone and decoding what it receives, for
// 3 s; inprocess runs the same sessions on the in-process PCMU. A frame is
// one session's tick (one encode, one decode). cpu-us/frame is host +
// plugin CPU per frame, sockets and all: the plugin's minus the in-process
// figure is what the codec seam costs through the media engines.
func BenchmarkCodecPluginSessions(b *testing.B) {
	for _, calls := range []int{100, 200, 500} {
		b.Run(fmt.Sprintf("inprocess/PCMU/calls=%d", calls), func(b *testing.B) {
			benchSessions(b, nil, codecs.PCMU(), calls, 3*time.Second)
		})
		b.Run(fmt.Sprintf("plugin/PCMU/calls=%d", calls), func(b *testing.B) {
			c, m := benchCodecClient(b, 0)
			benchSessions(b, c, m["PCMU"], calls, 3*time.Second)
		})
	}
}

func benchSessions(b *testing.B, c *CodecClient, codec codecs.Codec, calls int, dur time.Duration) {
	pid := os.Getpid()
	stats := func() CodecStats { return CodecStats{} }
	if c != nil {
		pid, stats = c.Supervisor().PID(), c.Stats
	}
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	for b.Loop() {
		sess := make([]*media.Session, calls)
		for i := range sess {
			tone, err := audio.NewTone(440+float64(i%50), 8000, 0.3)
			if err != nil {
				b.Fatal(err)
			}
			s, err := media.Open(b.Context(), media.Config{Local: lo, Codec: codec, Source: tone, Sink: discardSink{}})
			if err != nil {
				b.Fatal(err)
			}
			sess[i] = s
		}
		for i := 0; i+1 < calls; i += 2 {
			sess[i].SetRemote(sess[i+1].LocalAddr())
			sess[i+1].SetRemote(sess[i].LocalAddr())
		}
		var before uint64
		for _, s := range sess {
			s.Start()
		}
		time.Sleep(200 * time.Millisecond) // past the start, the jitter buffers filled
		// The CPU meter spans both counts, so the frames counted and the
		// CPU measured cover the same time.
		meter := startCPU(b, pid)
		s0 := stats()
		for _, s := range sess {
			before += s.Stats().PacketsSent
		}
		time.Sleep(dur)
		var sent, played, decErr uint64
		for _, s := range sess {
			st := s.Stats()
			sent += st.PacketsSent
			played += st.FramesPlayed
			decErr += st.DecodeErrors + st.SendErrors
		}
		s := stats()
		host, plug, wall := meter.stop(b)
		for _, s := range sess {
			_ = s.Close()
		}
		if c == nil {
			plug = 0
		}
		frames := float64(sent - before)
		b.ReportMetric(float64(host+plug)/frames/float64(time.Microsecond), "cpu-us/frame")
		b.ReportMetric(float64(host+plug)/float64(wall), "cores")
		b.ReportMetric(frames/float64(calls)/wall.Seconds(), "frames/s/call")
		b.ReportMetric(float64(decErr), "errors")
		b.ReportMetric(float64(played)/float64(sent), "played/sent")
		b.ReportMetric(float64(s.Frames-s0.Frames)/float64(max(1, s.Batches-s0.Batches)), "frames/batch")
	}
}

// discardSink plays nothing (the frames are still decoded).
type discardSink struct{}

func (discardSink) WriteFrame([]int16) error { return nil }
