package control

import "errors"

// Sentinel errors. Server-side ones are mapped to an HTTP status and an error
// code (see apierror.go); on the client side an *APIError carrying that code
// matches the same sentinel with errors.Is, as do the endpoint sentinels.
var (
	// ErrNoEndpoint means the process serves no endpoint (for example the
	// access server), so the route has nothing to show or control.
	ErrNoEndpoint = errors.New("control: this process has no endpoint (no calls or buddies here)")
	// ErrNoSuchEndpoint means /v1/endpoints/{user}/{device} names no
	// endpoint this process serves now (a gateway device whose phone is
	// not registered), or the process serves only one.
	ErrNoSuchEndpoint = errors.New("control: no such endpoint")
	// ErrNoMetrics means the process was started without a metrics registry.
	ErrNoMetrics = errors.New("control: this process exports no metrics")
	// ErrBadRequest means the request body is not the JSON the route wants:
	// malformed, unknown fields, trailing data or a missing field.
	ErrBadRequest = errors.New("control: bad request")
	// ErrBodyTooLarge means the request body is larger than MaxBodyBytes.
	ErrBodyTooLarge = errors.New("control: request body too large")
	// ErrForbidden means a browser-originated write (a POST with an Origin
	// header) was refused.
	ErrForbidden = errors.New("control: cross-origin writes are not allowed")
	// ErrNotFound means no route matches the path.
	ErrNotFound = errors.New("control: no such route")
	// ErrMethodNotAllowed means the path exists but not with this method.
	ErrMethodNotAllowed = errors.New("control: method not allowed")
	// ErrShuttingDown means the server is closing and takes no new requests.
	ErrShuttingDown = errors.New("control: server shutting down")

	// ErrNotRunning means nothing answers at the admin address: the process
	// is not running, or runs without --admin, or on another port.
	ErrNotRunning = errors.New("control: nothing answers")
	// ErrStreamEnded means the server ended the event stream: it is shutting
	// down, or this subscriber fell too far behind and was dropped.
	ErrStreamEnded = errors.New("control: event stream ended by the server")
	// ErrBadResponse means the server's answer could not be decoded.
	ErrBadResponse = errors.New("control: malformed response from server")
	// ErrInvalidArgument means a client method was called with an argument
	// it cannot send (empty call id, bad admin address, nil callback).
	ErrInvalidArgument = errors.New("control: invalid argument")
)
