package opus_test

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/plugins"
	"github.com/baton-voice/baton/plugins/cmd/codec-opus/opus"
	"github.com/baton-voice/baton/plugins/plugintest"
)

var builds plugintest.Builds

func TestMain(m *testing.M) {
	code := m.Run()
	builds.Cleanup()
	os.Exit(code)
}

// opusFrames returns 50 frames (1 s) of a tone at rate.
func opusFrames(b *testing.B, rate int) [][]int16 {
	src, err := audio.NewTone(1000, rate, 0.3)
	if err != nil {
		b.Fatal(err)
	}
	fs := make([][]int16, 50)
	for i := range fs {
		fs[i] = make([]int16, rate/50)
		_ = src.ReadFrame(fs[i])
	}
	return fs
}

// runCalls runs b.N frames (encode + decode of 20 ms) over `calls`
// goroutines, each with its own encoder and decoder of c.
func runCalls(b *testing.B, c codecs.Codec, calls, rate int) {
	frames := opusFrames(b, rate)
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() {
			enc, err := codecs.NewEncoder(c)
			if err != nil {
				b.Error(err)
				return
			}
			defer enc.Close()
			dec, err := codecs.NewDecoder(c)
			if err != nil {
				b.Error(err)
				return
			}
			defer dec.Close()
			pkt, out := make([]byte, 1500), make([]int16, rate/50)
			for i := 0; left.Add(-1) >= 0; i++ {
				n, err := enc.Encode(pkt, frames[i%len(frames)])
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := dec.Decode(out, pkt[:n]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkOpus compares Opus (same libopus, 48 kHz PCM, 32 kbit/s,
// complexity 5) in process with Opus in the codec-opus plugin; a frame is
// one 20 ms encode + decode. cpu-us/frame is this process's CPU plus the
// plugin's.
func BenchmarkOpus(b *testing.B) {
	c, err := opus.New(opus.Config{})
	if err != nil {
		b.Skipf("opus: %v", err)
	}
	for _, calls := range []int{1, 100} {
		b.Run(fmt.Sprintf("inprocess/calls=%d", calls), func(b *testing.B) {
			cpu0, _ := plugintest.ProcessCPU(0)
			runCalls(b, c, calls, 48000)
			cpu1, _ := plugintest.ProcessCPU(0)
			b.ReportMetric(float64(cpu1-cpu0)/float64(b.N)/float64(time.Microsecond), "cpu-us/frame")
		})
		for _, procs := range []int{1, 0} {
			name := fmt.Sprintf("plugin/calls=%d", calls)
			var env []string
			if procs > 0 {
				// One worker in the plugin (GOMAXPROCS=1), against as many
				// workers as cores.
				name = fmt.Sprintf("plugin-1proc/calls=%d", calls)
				env = []string{"GOMAXPROCS=" + strconv.Itoa(procs)}
			}
			b.Run(name, func(b *testing.B) {
				benchPlugin(b, env, calls)
			})
		}
	}
}

func benchPlugin(b *testing.B, env []string, calls int) {
	cl, err := plugins.NewCodecClient(b.Context(), plugins.CodecConfig{
		Config:       plugins.Config{Path: builds.Bin(b, "github.com/baton-voice/baton/plugins/cmd/codec-opus"), Env: env},
		FrameTimeout: time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	pid := cl.Supervisor().PID()
	h0, _ := plugintest.ProcessCPU(0)
	p0, _ := plugintest.ProcessCPU(pid)
	b.ResetTimer()
	runCalls(b, cl.Codecs()[0], calls, 48000)
	b.StopTimer()
	h1, _ := plugintest.ProcessCPU(0)
	p1, _ := plugintest.ProcessCPU(pid)
	b.ReportMetric(float64(h1-h0+p1-p0)/float64(b.N)/float64(time.Microsecond), "cpu-us/frame")
	b.ReportMetric(float64(p1-p0)/float64(h1-h0+p1-p0), "plugin-share")
	st := cl.Stats()
	b.ReportMetric(float64(st.Frames)/float64(max(1, st.Batches)), "frames/batch")
}
