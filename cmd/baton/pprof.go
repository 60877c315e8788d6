package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"
)

// servePprof serves Go's runtime profiles (net/http/pprof) on addr for
// `baton gateway --pprof ADDR`, an opt-in, hidden flag for benchmarks
// (docs/benchmarks.md §16). The profiles show call stacks, goroutines
// and the command line, so addr must be a loopback IP: anything else is
// refused with an error naming it. The listener closes when ctx ends; stop
// waits for the server to exit.
func servePprof(ctx context.Context, addr string, log *slog.Logger) (bound string, stop func(), err error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", nil, fmt.Errorf("--pprof %q: want a loopback host:port, e.g. 127.0.0.1:6060: %w", addr, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return "", nil, fmt.Errorf("--pprof %q: %q is not a loopback IP (the profiles expose the process; only 127.0.0.0/8 or ::1)", addr, host)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("--pprof %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof listener stopped", "err", err)
		}
	}()
	stopWatch := context.AfterFunc(ctx, func() { _ = srv.Close() })
	log.Info("pprof listening", "addr", ln.Addr().String())
	return ln.Addr().String(), func() {
		stopWatch()
		_ = srv.Close()
		<-done
	}, nil
}
