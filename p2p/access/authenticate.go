package access

import (
	"context"
	"crypto"
	"errors"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/baton-voice/baton/p2p/connlimit"
	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// gatewayLimitKey is the failed-login limiter's user key for a gateway
// credential. ':' is not allowed in user names, so a gateway and a user of
// the same name never share a bucket.
func gatewayLimitKey(gateway string) string { return "gateway:" + gateway }

// authenticate checks a login request's credential: the user's password,
// or, with req.Gateway set, the gateway's secret and that req.User is
// delegated to that gateway. The failed-login limiter decides first, before
// any argon2 work, for gateways as for users. It answers a refused login
// (the caller then closes the connection) and reports whether it passed.
func (s *Server) authenticate(ctx context.Context, log *slog.Logger, raw net.Conn, wc *wire.Conn, req *wire.LoginRequest) bool {
	_, ok := s.authenticateAs(ctx, log, raw, wc, req)
	return ok
}

// authenticateAs is authenticate, also returning the users delegated to
// req.Gateway. With req.Gateway set and req.User empty (a gateway
// session's login) only the gateway's secret is checked.
func (s *Server) authenticateAs(ctx context.Context, log *slog.Logger, raw net.Conn, wc *wire.Conn, req *wire.LoginRequest) ([]string, bool) {
	key := req.User
	if req.Gateway != "" {
		key = gatewayLimitKey(req.Gateway)
	}
	// A refused guess costs the server a map lookup. Unknown and existing
	// names are keyed alike.
	var ticket loginTicket
	if src := connlimit.Source(raw.RemoteAddr()); !s.cfg.Limits.trusted(src) {
		var wait time.Duration
		ticket, wait = s.fails.admit(src, key)
		if wait > 0 {
			s.refuseLimited(log, wc, wait)
			return nil, false
		}
	}
	// The password (or secret) is never logged, not even on failure.
	var err error
	var delegated []string
	if req.Gateway == "" {
		err = s.db.Authenticate(ctx, req.User, req.Password)
	} else {
		delegated, err = s.db.AuthenticateGateway(ctx, req.Gateway, req.Password)
	}
	if err != nil {
		if errors.Is(err, ErrAuthFailed) {
			ticket.done(true)
			s.stats.logins[loginAuthFailed].Add(1)
			if req.Gateway != "" {
				log.Info("login refused: wrong gateway name or secret", "gateway", req.Gateway)
				s.refuse(wc, wire.CodeAuthFailed, "wrong gateway name or secret")
				return nil, false
			}
			log.Info("login refused: wrong user or password")
			s.refuse(wc, wire.CodeAuthFailed, "wrong user or password")
			return nil, false
		}
		ticket.done(false) // the server failed; the client guessed nothing
		s.stats.logins[loginError].Add(1)
		log.Error("login failed", "error", err)
		s.refuse(wc, wire.CodeInternal, "authentication unavailable")
		return nil, false
	}
	// The secret was right: a refusal from here on is no guess.
	ticket.done(false)
	if req.Gateway != "" && req.User != "" && !slices.Contains(delegated, req.User) {
		s.refuseNotDelegated(log, wc, req.Gateway, pki.Identity{User: req.User, Device: req.Device})
		return nil, false
	}
	return delegated, true
}

// refuseNotDelegated answers a gateway's login for a user not delegated
// to it, naming both.
func (s *Server) refuseNotDelegated(log *slog.Logger, wc *wire.Conn, gateway string, id pki.Identity) {
	s.stats.logins[loginNotDelegated].Add(1)
	nd := &NotDelegatedError{Gateway: gateway, User: id.User, Device: id.Device}
	log.Warn("login refused: user not delegated to the gateway", "gateway", gateway)
	s.refuse(wc, wire.CodeNotDelegated, nd.Error())
}

// issue issues the endpoint certificate of id, marked bridged when a
// gateway logged it in.
func (s *Server) issue(pub crypto.PublicKey, id pki.Identity, gateway string, now time.Time) ([]byte, time.Time, error) {
	if gateway != "" {
		return s.ca.IssueBridged(pub, id, gateway, now, s.cfg.CredentialTTL)
	}
	return s.ca.IssueEndpoint(pub, id, now, s.cfg.CredentialTTL)
}
