package control

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/baton-voice/baton/p2p/endpoint"
)

// Error codes carried in the "code" field of every error response. They are
// part of the API: scripts match on them, so they never change meaning.
const (
	CodeNoSuchCall       = "no-such-call"
	CodeUnknownPeer      = "unknown-peer"
	CodeOffline          = "offline"
	CodeBusy             = "busy"
	CodeDeclined         = "declined"
	CodeBadState         = "bad-state"
	CodeNoCodec          = "no-codec"
	CodeInvalidTarget    = "invalid-target"
	CodeUnreachable      = "unreachable"
	CodeNotLoggedIn      = "not-logged-in"
	CodeClosed           = "closed"
	CodeBadRequest       = "bad-request"
	CodeBodyTooLarge     = "body-too-large"
	CodeNoEndpoint       = "no-endpoint"
	CodeNoSuchEndpoint   = "no-such-endpoint"
	CodeNoMetrics        = "no-metrics"
	CodeNotFound         = "not-found"
	CodeMethodNotAllowed = "method-not-allowed"
	CodeForbidden        = "forbidden"
	CodeShuttingDown     = "shutting-down"
	CodeInternal         = "internal"

	// Handoff codes. CodePolicyRefused is the handoff policy's refusal
	// (endpoint.ErrForbidden), not CodeForbidden, which is this API's own
	// refusal of a browser-originated write (control.ErrForbidden).
	CodePolicyRefused   = "policy-refused"
	CodeGrantRefused    = "grant-refused"
	CodeNothingToPull   = "nothing-to-pull"
	CodeSeveralSessions = "several-sessions"
	CodeHandoffFailed   = "handoff-failed"
	CodeNoSuchHandoff   = "no-such-handoff"

	// CodeInvalidDTMF refuses DTMF digits that are not 0-9 * # A-D (the
	// message names the character) or a duration out of range.
	CodeInvalidDTMF = "invalid-dtmf"
)

// APIError is an error response from the control API, as the client sees it.
// It matches the sentinel its code stands for with errors.Is, so a caller can
// write errors.Is(err, endpoint.ErrBusy) on either side of the wire.
type APIError struct {
	Status  int    // HTTP status
	Code    string // one of the Code constants, or derived from Status for non-JSON answers
	Message string // human-readable detail from the server
}

// Error reads like "409 busy: endpoint: dial bob: endpoint: peer is busy".
func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%d %s", e.Status, e.Code)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// Is reports whether target is the sentinel that e's code stands for.
func (e *APIError) Is(target error) bool {
	s := sentinelForCode(e.Code)
	return s != nil && s == target
}

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// classify maps an error to its HTTP status and code. Endpoint sentinels come
// first so a wrapped endpoint error is never reported as a generic one, and
// among them the handoff ones first: a failed handoff wraps its cause (an
// unreachable peer, say), and its outcome is what the caller asked about.
func classify(err error) (status int, code string) {
	switch {
	case errors.Is(err, endpoint.ErrNoSuchHandoff):
		return http.StatusNotFound, CodeNoSuchHandoff
	case errors.Is(err, endpoint.ErrForbidden):
		return http.StatusForbidden, CodePolicyRefused
	case errors.Is(err, endpoint.ErrGrant):
		return http.StatusForbidden, CodeGrantRefused
	case errors.Is(err, endpoint.ErrNothingToPull):
		return http.StatusConflict, CodeNothingToPull
	case errors.Is(err, endpoint.ErrSeveralSessions):
		return http.StatusConflict, CodeSeveralSessions
	case errors.Is(err, endpoint.ErrHandoffFailed):
		return http.StatusConflict, CodeHandoffFailed
	case errors.Is(err, endpoint.ErrNoSuchCall):
		return http.StatusNotFound, CodeNoSuchCall
	case errors.Is(err, endpoint.ErrUnknownPeer):
		return http.StatusNotFound, CodeUnknownPeer
	case errors.Is(err, endpoint.ErrOffline):
		return http.StatusConflict, CodeOffline
	case errors.Is(err, endpoint.ErrBusy):
		return http.StatusConflict, CodeBusy
	case errors.Is(err, endpoint.ErrDeclined):
		return http.StatusConflict, CodeDeclined
	case errors.Is(err, endpoint.ErrBadState):
		return http.StatusConflict, CodeBadState
	case errors.Is(err, endpoint.ErrNoCodec):
		// The two sides' offers do not meet, like a declined call: a
		// conflict with the peer, not a fault of this server (SIP uses 488).
		return http.StatusConflict, CodeNoCodec
	case errors.Is(err, endpoint.ErrInvalidTarget):
		return http.StatusBadRequest, CodeInvalidTarget
	case errors.Is(err, endpoint.ErrInvalidDTMF):
		return http.StatusBadRequest, CodeInvalidDTMF
	case errors.Is(err, endpoint.ErrMediaRefused):
		return http.StatusConflict, CodeMediaRefused
	case errors.Is(err, ErrNotImplemented):
		return http.StatusNotImplemented, CodeNotImplemented
	case errors.Is(err, endpoint.ErrUnreachable):
		return http.StatusBadGateway, CodeUnreachable
	case errors.Is(err, endpoint.ErrNotLoggedIn):
		return http.StatusServiceUnavailable, CodeNotLoggedIn
	case errors.Is(err, endpoint.ErrClosed):
		return http.StatusServiceUnavailable, CodeClosed
	case errors.Is(err, ErrBodyTooLarge):
		return http.StatusBadRequest, CodeBodyTooLarge
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest, CodeBadRequest
	case errors.Is(err, ErrNoEndpoint):
		return http.StatusNotFound, CodeNoEndpoint
	case errors.Is(err, ErrNoSuchEndpoint):
		return http.StatusNotFound, CodeNoSuchEndpoint
	case errors.Is(err, ErrNoMetrics):
		return http.StatusNotFound, CodeNoMetrics
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, CodeNotFound
	case errors.Is(err, ErrMethodNotAllowed):
		return http.StatusMethodNotAllowed, CodeMethodNotAllowed
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, CodeForbidden
	case errors.Is(err, ErrShuttingDown):
		return http.StatusServiceUnavailable, CodeShuttingDown
	}
	return http.StatusInternalServerError, CodeInternal
}

// sentinelForCode is the inverse of classify, for APIError.Is.
func sentinelForCode(code string) error {
	switch code {
	case CodeNoSuchHandoff:
		return endpoint.ErrNoSuchHandoff
	case CodePolicyRefused:
		return endpoint.ErrForbidden
	case CodeGrantRefused:
		return endpoint.ErrGrant
	case CodeNothingToPull:
		return endpoint.ErrNothingToPull
	case CodeSeveralSessions:
		return endpoint.ErrSeveralSessions
	case CodeHandoffFailed:
		return endpoint.ErrHandoffFailed
	case CodeNoSuchCall:
		return endpoint.ErrNoSuchCall
	case CodeUnknownPeer:
		return endpoint.ErrUnknownPeer
	case CodeOffline:
		return endpoint.ErrOffline
	case CodeBusy:
		return endpoint.ErrBusy
	case CodeDeclined:
		return endpoint.ErrDeclined
	case CodeBadState:
		return endpoint.ErrBadState
	case CodeNoCodec:
		return endpoint.ErrNoCodec
	case CodeInvalidTarget:
		return endpoint.ErrInvalidTarget
	case CodeInvalidDTMF:
		return endpoint.ErrInvalidDTMF
	case CodeMediaRefused:
		return endpoint.ErrMediaRefused
	case CodeNotImplemented:
		return ErrNotImplemented
	case CodeUnreachable:
		return endpoint.ErrUnreachable
	case CodeNotLoggedIn:
		return endpoint.ErrNotLoggedIn
	case CodeClosed:
		return endpoint.ErrClosed
	case CodeBadRequest:
		return ErrBadRequest
	case CodeBodyTooLarge:
		return ErrBodyTooLarge
	case CodeNoEndpoint:
		return ErrNoEndpoint
	case CodeNoSuchEndpoint:
		return ErrNoSuchEndpoint
	case CodeNoMetrics:
		return ErrNoMetrics
	case CodeNotFound:
		return ErrNotFound
	case CodeMethodNotAllowed:
		return ErrMethodNotAllowed
	case CodeForbidden:
		return ErrForbidden
	case CodeShuttingDown:
		return ErrShuttingDown
	}
	return nil
}

// codeForStatus derives a code for an error answer that carried none (a
// proxy, or something that is not Baton, answering): "Bad Gateway" becomes
// "bad-gateway".
func codeForStatus(status int) string {
	t := http.StatusText(status)
	if t == "" {
		return fmt.Sprintf("http-%d", status)
	}
	return strings.ReplaceAll(strings.ToLower(t), " ", "-")
}
