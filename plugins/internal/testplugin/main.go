// Command testplugin is a misbehaving plugin for the host's tests; it is
// never shipped. -mode picks the behaviour:
//
//	allow      policy that allows everything (default)
//	hang       policy whose Decide sleeps until its deadline
//	stdout     prints to stdout before its handshake
//	crash      writes a panic to stderr and exits 2 before its handshake
//	version99  serves policy protocol version 99
//	slowstart  sleeps 1 h before its handshake
//	unhealthy  policy whose health check fails
//	memory     presence backend on presence.Memory
//	codec      codec plugin: PCMU and PCMA (in-process G.711, over the
//	           codec protocol) and x-delta, a stateful test codec
//	codec-stream  codec, as a plugin from before shared memory batches
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"time"

	"google.golang.org/grpc"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/p2p/presence"
	"github.com/baton-voice/baton/plugins/internal/pb/policyv1"
	"github.com/baton-voice/baton/plugins/internal/protocol"
	"github.com/baton-voice/baton/plugins/sdk"
)

type allow struct{}

func (allow) Decide(context.Context, handoff.Request) (handoff.Decision, error) {
	return handoff.Decision{Allow: true, Reason: "testplugin allows"}, nil
}

type hang struct{}

func (hang) Decide(ctx context.Context, _ handoff.Request) (handoff.Decision, error) {
	<-ctx.Done()
	return handoff.Decision{}, ctx.Err()
}

func main() {
	mode := flag.String("mode", "allow", "behaviour")
	flag.Parse()
	profile()
	switch *mode {
	case "allow":
		sdk.ServePolicy(allow{}, sdk.Name("testplugin"))
	case "hang":
		sdk.ServePolicy(hang{}, sdk.Name("testplugin"))
	case "stdout":
		fmt.Println("hello from a plugin that prints before its handshake")
		sdk.ServePolicy(allow{}, sdk.Name("testplugin"))
	case "crash":
		fmt.Fprintln(os.Stderr, "panic: testplugin crashed at start")
		os.Exit(2)
	case "version99":
		protocol.Serve(protocol.ServeConfig{
			Info: protocol.Info{Kind: protocol.KindPolicy, Version: 99, Name: "testplugin"},
			Register: func(s *grpc.Server) {
				policyv1.RegisterPolicyServer(s, &protocol.PolicyServer{Policy: allow{}})
			},
		})
	case "slowstart":
		time.Sleep(time.Hour)
	case "unhealthy":
		sdk.ServePolicy(allow{}, sdk.Name("testplugin"),
			sdk.Health(func(context.Context) error { return errors.New("testplugin is unhealthy on purpose") }),
			sdk.SelfTest(func(context.Context) error { return errors.New("testplugin self-test fails on purpose") }))
	case "codec":
		sdk.ServeCodecs([]codecs.Codec{codecs.PCMU(), codecs.PCMA(), deltaCodec{}}, sdk.Name("testplugin-codec"))
	case "codec-stream":
		// A plugin from before the shared memory region: it never maps
		// the one it is given, so it gets every batch through the stream.
		_ = os.Setenv(protocol.EnvSharedMemoryFD, "")
		sdk.ServeCodecs([]codecs.Codec{codecs.PCMU(), codecs.PCMA(), deltaCodec{}}, sdk.Name("testplugin-codec"))
	case "memory":
		sdk.ServePresence(presence.NewMemory(), sdk.Name("testplugin-memory"))
	default:
		fmt.Fprintln(os.Stderr, "testplugin: unknown -mode", *mode)
		os.Exit(1)
	}
}

// profile writes a CPU profile of this plugin process to
// $BATON_TESTPLUGIN_CPUPROFILE.PID for $BATON_TESTPLUGIN_CPUPROFILE_SECONDS
// (default 10) when the first is set: the plugin side of a benchmark's
// profile (docs/benchmarks.md §15). The host kills its plugins, so the
// profile stops on a timer rather than at exit.
func profile() {
	path := os.Getenv("BATON_TESTPLUGIN_CPUPROFILE")
	if path == "" {
		return
	}
	secs, err := strconv.Atoi(os.Getenv("BATON_TESTPLUGIN_CPUPROFILE_SECONDS"))
	if err != nil || secs <= 0 {
		secs = 10
	}
	f, err := os.Create(path + "." + strconv.Itoa(os.Getpid()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "testplugin: cpu profile:", err)
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "testplugin: cpu profile:", err)
		_ = f.Close()
		return
	}
	time.AfterFunc(time.Duration(secs)*time.Second, func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	})
}
