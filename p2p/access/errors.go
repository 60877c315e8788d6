package access

import (
	"errors"
	"time"
)

// Sentinel errors returned (wrapped with context, "access: ...: %w") by the
// user database, the server and the client. Test for them with errors.Is.
var (
	// ErrAuthFailed means a login or Authenticate failed: the user is
	// unknown or the password is wrong. The two are deliberately
	// indistinguishable, to the caller and on the wire (CodeAuthFailed), so
	// the access server cannot be used to discover user names.
	ErrAuthFailed = errors.New("wrong user or password")

	// ErrUserExists means AddUser was given a name that is already taken.
	ErrUserExists = errors.New("user already exists")

	// ErrNoSuchUser means an operation named a user that does not exist.
	ErrNoSuchUser = errors.New("no such user")

	// ErrBuddyExists means AddBuddy was asked for a link that exists.
	ErrBuddyExists = errors.New("already buddies")

	// ErrNoSuchBuddy means DeleteBuddy was asked for a link that does not
	// exist.
	ErrNoSuchBuddy = errors.New("not buddies")

	// ErrSelfBuddy means AddBuddy was asked to make a user its own buddy.
	ErrSelfBuddy = errors.New("a user cannot be its own buddy")

	// ErrInvalidName means a user (or device) name is not 1-64 characters
	// of [a-z0-9._-] starting with a letter or digit (pki.ValidName).
	ErrInvalidName = errors.New("invalid name")

	// ErrInvalidPassword means a password is empty or longer than the
	// protocol allows (wire.MaxPassword bytes).
	ErrInvalidPassword = errors.New("invalid password")

	// ErrBadHash means a stored password hash cannot be parsed: the
	// database was edited by hand or is corrupt.
	ErrBadHash = errors.New("unreadable password hash")

	// ErrSchema means the user database was written by a newer build (its
	// schema version is higher than this build knows).
	ErrSchema = errors.New("unsupported user database schema")

	// ErrClosed means the user database, server or client has been closed.
	ErrClosed = errors.New("closed")

	// ErrBadKey means a login carried a public key the access server does
	// not accept: only ECDSA P-256 and Ed25519 are.
	ErrBadKey = errors.New("unsupported public key")

	// ErrUntrustedServer means the access server's TLS certificate does not
	// verify against the configured roots (wrong ca.crt, or a server that
	// is not the access server).
	ErrUntrustedServer = errors.New("access server certificate not trusted")

	// ErrBadResponse means the access server answered with something the
	// client cannot use (a certificate for another identity or key, an
	// unexpected message).
	ErrBadResponse = errors.New("bad response from access server")

	// ErrRateLimited means the access server refused a login without
	// checking the password: too many failed logins from this source
	// address, or for this user from it (CodeRateLimited). The rightful
	// user can still log in from another address, or after the wait that
	// RateLimitedError carries.
	ErrRateLimited = errors.New("too many failed logins from this address (rate limited)")

	// ErrGatewayExists means AddGateway was given a name already taken.
	ErrGatewayExists = errors.New("gateway already exists")

	// ErrNoSuchGateway means an operation named a gateway credential that
	// does not exist.
	ErrNoSuchGateway = errors.New("no such gateway")

	// ErrNotDelegated means a gateway asked to log in a device of a user
	// not delegated to it (CodeNotDelegated); NotDelegatedError names both.
	ErrNotDelegated = errors.New("user not delegated to this gateway")

	// ErrImport means ImportUsers or ParseUserCSV refused an import file;
	// nothing was written. ImportError lists the problems, each with its
	// line and field.
	ErrImport = errors.New("user import refused")

	// ErrConnectionLost means the connection to the access server ended
	// without Close: the server closed it, timed it out, or the network
	// failed. Client.Err wraps it with the cause.
	ErrConnectionLost = errors.New("connection to access server lost")
)

// RateLimitedError is a login refused by the access server's failed-login
// limiter. It matches ErrRateLimited.
type RateLimitedError struct {
	// RetryAfter is how long the server said to wait (0 = not said).
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	if e.RetryAfter <= 0 {
		return ErrRateLimited.Error() + "; try again later"
	}
	return ErrRateLimited.Error() + "; retry in " + e.RetryAfter.Round(time.Second/10).String()
}

// Unwrap makes errors.Is(err, ErrRateLimited) hold.
func (e *RateLimitedError) Unwrap() error { return ErrRateLimited }
