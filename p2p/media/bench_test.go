package media

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/baton-voice/baton/codecs"
)

var benchModes = []struct {
	name   string
	secure bool
}{
	{name: "rtp"},
	{name: "srtp", secure: true},
}

// BenchmarkSendPacket measures one outgoing RTP packet with G.711 µ-law:
// read a frame, encode, marshal, (encrypt), and, for "udp", write it to a
// loopback socket.
func BenchmarkSendPacket(b *testing.B) {
	for _, m := range benchModes {
		for _, write := range []bool{false, true} {
			name := m.name + "/build"
			if write {
				name = m.name + "/udp"
			}
			b.Run(name, func(b *testing.B) {
				cfg := Config{Local: addr("127.0.0.1:0"), Codec: codecs.PCMU(), Source: &patternSource{tag: 1}}
				if m.secure {
					cfg.SendKeys, cfg.RecvKeys = mustKeys(b), mustKeys(b)
				}
				eng, err := newEngine(testSettings(b, cfg), 1)
				if err != nil {
					b.Fatal(err)
				}
				dst, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr("127.0.0.1:0")))
				if err != nil {
					b.Fatal(err)
				}
				defer dst.Close()
				src, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr("127.0.0.1:0")))
				if err != nil {
					b.Fatal(err)
				}
				defer src.Close()
				eng.conn = src
				to := dst.LocalAddr().(*net.UDPAddr).AddrPort()
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if write {
						eng.sendFrame(to)
					} else if _, err := eng.send.next(eng.source); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if write && eng.sendErrors != 0 {
					b.Fatalf("%d send errors", eng.sendErrors)
				}
			})
		}
	}
}

// BenchmarkReceivePacket measures one incoming RTP packet with G.711 µ-law:
// parse, (authenticate and decrypt), jitter buffer, and the playout tick
// that decodes it and hands it to a sink.
func BenchmarkReceivePacket(b *testing.B) {
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) {
			cfg := Config{Local: addr("127.0.0.1:0"), Codec: codecs.PCMU(), Source: &patternSource{tag: 1}}
			var keys *Keys
			if m.secure {
				keys = mustKeys(b)
				cfg.SendKeys, cfg.RecvKeys = keys, mustKeys(b)
			}
			// The far end: a sender whose packets the receiver can
			// authenticate.
			far, err := newSender(testSettings(b, cfg), 0x5151)
			if err != nil {
				b.Fatal(err)
			}
			rcfg := Config{Local: addr("127.0.0.1:0"), Codec: codecs.PCMU(), Sink: &countingSink{}}
			if m.secure {
				rcfg.SendKeys, rcfg.RecvKeys = mustKeys(b), keys
			}
			eng, err := newEngine(testSettings(b, rcfg), 2)
			if err != nil {
				b.Fatal(err)
			}
			// Packets are generated in batches outside the timer: SRTP's
			// replay list refuses a packet twice.
			const batch = 4096
			pkts := make([][]byte, batch)
			fill := func() {
				for i := range pkts {
					p, err := far.next(cfg.Source)
					if err != nil {
						b.Fatal(err)
					}
					pkts[i] = append(pkts[i][:0], p...)
				}
			}
			fill()
			at := time.Unix(1_700_000_000, 0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				j := i % batch
				if j == 0 && i > 0 {
					b.StopTimer()
					fill()
					b.StartTimer()
				}
				if v := eng.recv.receive(pkts[j], at); v != verdictAccepted {
					b.Fatalf("packet %d: %v", i, v)
				}
				eng.playout(at)
				at = at.Add(20 * time.Millisecond)
			}
		})
	}
}

// BenchmarkSessionMemory measures the memory of an active call: N sessions
// in N/2 pairs, each sending and receiving G.711 over SRTP on loopback with
// its goroutines running. It reports heap bytes (HeapAlloc after GC) and
// goroutine stack bytes per session. Run it with -benchtime=1x.
func BenchmarkSessionMemory(b *testing.B) {
	const n = 200
	for range b.N {
		b.StopTimer()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&before)
		sessions := make([]*Session, 0, n)
		for range n / 2 {
			kAB, kBA := mustKeys(b), mustKeys(b)
			x, err := Open(context.Background(), Config{Local: addr("127.0.0.1:0"), Codec: codecs.PCMU(),
				SendKeys: kAB, RecvKeys: kBA, Source: &patternSource{tag: 1}, Sink: &countingSink{}})
			if err != nil {
				b.Fatal(err)
			}
			y, err := Open(context.Background(), Config{Local: addr("127.0.0.1:0"), Codec: codecs.PCMU(),
				SendKeys: kBA, RecvKeys: kAB, Source: &patternSource{tag: 2}, Sink: &countingSink{}})
			if err != nil {
				b.Fatal(err)
			}
			x.SetRemote(y.LocalAddr())
			y.SetRemote(x.LocalAddr())
			x.Start()
			y.Start()
			sessions = append(sessions, x, y)
		}
		// Wait until every session is playing: buffers and SRTP state for
		// the peer's SSRC exist.
		deadline := time.Now().Add(30 * time.Second)
		for _, s := range sessions {
			for s.Stats().FramesPlayed < 5 {
				if time.Now().After(deadline) {
					b.Fatal("sessions did not start playing")
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap := float64(after.HeapAlloc-before.HeapAlloc) / n
		stack := float64(after.StackInuse-before.StackInuse) / n
		b.ReportMetric(heap, "heap-B/session")
		b.ReportMetric(stack, "stack-B/session")
		b.ReportMetric(heap+stack, "B/session")
		for _, s := range sessions {
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
		}
		runtime.KeepAlive(sessions)
	}
}

// TestBenchConfigs keeps the benchmarks' configurations valid when the
// benchmarks are not run.
func TestBenchConfigs(t *testing.T) {
	t.Parallel()
	for _, m := range benchModes {
		t.Run(fmt.Sprint(m.name), func(t *testing.T) {
			t.Parallel()
			cfg := Config{Local: addr("127.0.0.1:0"), Codec: codecs.PCMU()}
			if m.secure {
				cfg.SendKeys, cfg.RecvKeys = mustKeys(t), mustKeys(t)
			}
			if _, err := cfg.settings(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// BenchmarkPayloadPacket is BenchmarkSendPacket/build and
// BenchmarkReceivePacket for an audio.PayloadSource and PayloadSink (a
// gateway relaying without decoding): the frame is copied, not encoded or
// decoded; RTP header, (SRTP), jitter buffer and pacing are as for PCM.
func BenchmarkPayloadPacket(b *testing.B) {
	for _, m := range benchModes {
		b.Run(m.name+"/send", func(b *testing.B) {
			src := &payloadSource{}
			cfg := Config{Local: addr("127.0.0.1:0"), Codec: codecs.PCMU(), Source: src}
			if m.secure {
				cfg.SendKeys, cfg.RecvKeys = mustKeys(b), mustKeys(b)
			}
			eng, err := newEngine(testSettings(b, cfg), 1)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := eng.send.next(src); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(m.name+"/receive", func(b *testing.B) {
			cfg := Config{Local: addr("127.0.0.1:0"), Codec: codecs.PCMU(), Source: &payloadSource{}}
			var keys *Keys
			if m.secure {
				keys = mustKeys(b)
				cfg.SendKeys, cfg.RecvKeys = keys, mustKeys(b)
			}
			far, err := newSender(testSettings(b, cfg), 0x5151)
			if err != nil {
				b.Fatal(err)
			}
			sink := &payloadSink{}
			rcfg := Config{Local: addr("127.0.0.1:0"), Codec: codecs.PCMU(), Sink: sink}
			if m.secure {
				rcfg.SendKeys, rcfg.RecvKeys = mustKeys(b), keys
			}
			eng, err := newEngine(testSettings(b, rcfg), 2)
			if err != nil {
				b.Fatal(err)
			}
			const batch = 4096
			pkts := make([][]byte, batch)
			fill := func() {
				for i := range pkts {
					p, err := far.next(cfg.Source)
					if err != nil {
						b.Fatal(err)
					}
					pkts[i] = append(pkts[i][:0], p...)
				}
			}
			fill()
			at := time.Unix(1_700_000_000, 0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				j := i % batch
				if j == 0 && i > 0 {
					b.StopTimer()
					fill()
					b.StartTimer()
				}
				if v := eng.recv.receive(pkts[j], at); v != verdictAccepted {
					b.Fatalf("packet %d: %v", i, v)
				}
				eng.playout(at)
				at = at.Add(20 * time.Millisecond)
			}
			b.StopTimer()
			if b.N > 10 && (sink.payloads == 0 || sink.frames > 4) {
				b.Fatalf("sink took %d payloads and %d PCM frames", sink.payloads, sink.frames)
			}
		})
	}
}
