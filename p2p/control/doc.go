// Package control is the local control and admin API that every
// long-running Baton process serves over HTTP/JSON (--admin 127.0.0.1:PORT),
// and the client that "baton ctl" uses to drive it.
//
// The server side is an http.Handler over an endpoint.API (status, buddies,
// calls, call control, handoffs and mobility, the NDJSON event stream), plus
// /healthz and the caller's Prometheus registry on /metrics. Listen binds and
// serves it; Close shuts it down, ending open event streams. The route list, the JSON shapes
// and the error codes are documented in docs/control-api.md; keep the two in
// step.
//
// The API carries no authentication: it is meant for loopback only, like a
// Unix-domain admin socket. Two cheap guards keep a web page in a local
// browser from driving it (cross-site request forgery, DNS rebinding): POST
// requests that carry an Origin header are refused, and request bodies are
// bounded.
package control
