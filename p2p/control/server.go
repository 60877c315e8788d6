package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// shutdownTimeout is how long Close lets in-flight requests finish before it
// closes their connections.
const shutdownTimeout = 3 * time.Second

// Server is a running control API: a listener and the goroutine serving it.
type Server struct {
	ln     net.Listener
	srv    *http.Server
	h      *handler
	log    *slog.Logger
	done   chan struct{} // closed by Close: ends event streams
	served chan struct{} // closed when Serve has returned

	mu       sync.Mutex
	closing  bool
	inflight sync.WaitGroup // handlers running; Close waits for them

	closeOnce sync.Once
	closeErr  error
}

// Listen binds addr now (port 0 picks a free one; see Addr) and serves the
// control API on it in a goroutine until Close. ctx bounds only the bind.
//
// The API has no authentication: addr should be a loopback address.
func Listen(ctx context.Context, addr string, opts Options) (*Server, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("control: listen on %s: %w", addr, err)
	}
	s := &Server{
		ln:     ln,
		done:   make(chan struct{}),
		served: make(chan struct{}),
	}
	s.h = newHandler(opts, s.done)
	s.log = s.h.log
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    MaxBodyBytes,
		// No WriteTimeout: it would cut event streams; each event write
		// has its own deadline instead.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil && !ap.Addr().IsLoopback() {
		s.log.Warn("control API listens on a non-loopback address; it has no authentication", "addr", ln.Addr().String())
	}
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("control API stopped serving", "addr", ln.Addr().String(), "err", err)
		}
	}()
	s.log.Info("control API listening", "addr", ln.Addr().String())
	return s, nil
}

// Addr is the bound address, host:port, with the real port when Listen was
// given port 0.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// serveHTTP counts the request as in flight so Close can wait for it, and
// turns requests away once Close has begun.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		w.Header().Set("Connection", "close")
		s.h.fail(w, r, ErrShuttingDown)
		return
	}
	s.inflight.Add(1)
	s.mu.Unlock()
	defer s.inflight.Done()
	s.h.ServeHTTP(w, r)
}

// Close ends open event streams, lets other in-flight requests finish for a
// short while, then closes every connection. It returns once the serving
// goroutine and every handler have returned; it is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		close(s.done)

		// Close has no caller context by contract (io.Closer); the deadline
		// is the whole budget for a graceful stop.
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			// Some request outlived the deadline: cut it. Closing its
			// connection cancels its context, which ends the handler.
			s.closeErr = fmt.Errorf("control: graceful shutdown: %w", errors.Join(err, s.srv.Close()))
		}
		<-s.served
		s.inflight.Wait()
		s.log.Info("control API closed", "addr", s.ln.Addr().String())
	})
	return s.closeErr
}
