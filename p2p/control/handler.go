package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/baton-voice/baton/p2p/endpoint"
)

// MaxBodyBytes bounds every request body; a larger one is refused with 400
// body-too-large before it is decoded.
const MaxBodyBytes = 64 << 10

// eventWriteTimeout bounds the write of one event to a stream, so a client
// that stopped reading is dropped instead of pinning a goroutine.
const eventWriteTimeout = 10 * time.Second

// Options configures the control API.
type Options struct {
	// Endpoint is what the call and buddy routes serve; nil for processes
	// without an endpoint (the access server), where those routes answer
	// 404 no-endpoint.
	Endpoint endpoint.API
	// Status, when set, is what GET /v1/status serves (it takes precedence
	// over Endpoint.Status, so a process can report more than its endpoint).
	// Its result must marshal to JSON.
	Status func() any
	// Gatherer is served on /metrics: a registry built by the caller, never
	// the global one. Nil means 404 no-metrics.
	Gatherer prometheus.Gatherer
	// Logger receives one line per handled error; nil discards.
	Logger *slog.Logger
	// Endpoints, when set, serves the endpoints of a process that runs
	// many (a gateway's devices) under /v1/endpoints/{user}/{device}/...:
	// every route of the one-endpoint API, for that endpoint.
	Endpoints Endpoints
	// Handoffs and Handoff, when set, serve GET /v1/handoffs and
	// /v1/handoffs/{id} of a process without an Endpoint (a gateway: the
	// handoffs and transfers of all its devices, GatewayHandoff). Their
	// results must marshal to JSON; Handoff's error decides the status
	// (wrap endpoint.ErrNoSuchHandoff for 404).
	Handoffs func() any
	Handoff  func(id string) (any, error)
	// Events, when set, serves GET /v1/events of a process without an
	// Endpoint (a gateway: its devices' handoff, push and transfer events,
	// each with its device). The channel is closed when the subscriber
	// fell behind; cancel ends the subscription.
	Events func() (<-chan DeviceEvent, func())
}

// Endpoints is the set of endpoints a multi-endpoint process serves.
type Endpoints interface {
	// Endpoint returns the endpoint with identity id ("alice/desk"); an
	// error wrapping ErrNoSuchEndpoint when there is none (or it is not
	// online).
	Endpoint(id string) (endpoint.API, error)
	// EndpointIDs lists the identities Endpoint serves now, sorted.
	EndpointIDs() []string
}

// handler serves the routes. done, when not nil, is closed by the owning
// Server to end open event streams.
type handler struct {
	ep      endpoint.API
	status  func() any
	metrics http.Handler
	log     *slog.Logger
	mux     *http.ServeMux
	done    <-chan struct{}
	eps     Endpoints
	// handoffs and handoff serve /v1/handoffs without an endpoint.
	handoffs  func() any
	handoff   func(id string) (any, error)
	devEvents func() (<-chan DeviceEvent, func())
}

// NewHandler returns the control API as an http.Handler, for mounting on a
// server the caller owns. Event streams served by it end when their client
// goes away; use Listen to get a server whose Close also ends them.
func NewHandler(opts Options) http.Handler { return newHandler(opts, nil) }

func newHandler(opts Options, done <-chan struct{}) *handler {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{
		ep:     opts.Endpoint,
		status: opts.Status,
		log:    log.With("component", "control"),
		done:   done,
		eps:    opts.Endpoints,

		handoffs:  opts.Handoffs,
		handoff:   opts.Handoff,
		devEvents: opts.Events,
	}
	if opts.Gatherer != nil {
		h.metrics = promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
			ErrorLog: promLogger{h.log},
			// A broken collector should cost its own series, not the
			// whole scrape.
			ErrorHandling: promhttp.ContinueOnError,
		})
	}
	mux := http.NewServeMux()
	h.route(mux, "GET /healthz", h.healthz)
	h.route(mux, "GET /metrics", h.serveMetrics)
	h.route(mux, "GET /v1/status", h.getStatus)
	h.route(mux, "GET /v1/buddies", h.getBuddies)
	h.route(mux, "GET /v1/calls", h.getCalls)
	h.route(mux, "POST /v1/calls", h.dial)
	h.route(mux, "GET /v1/calls/{id}", h.getCall)
	h.route(mux, "POST /v1/calls/{id}/answer", h.answer)
	h.route(mux, "POST /v1/calls/{id}/hangup", h.hangup)
	h.route(mux, "POST /v1/calls/{id}/push", h.push)
	h.route(mux, "POST /v1/calls/{id}/dtmf", h.dtmf)               // dtmf.go
	h.route(mux, "POST /v1/calls/{id}/hold", h.holdRoute(true))    // hold.go
	h.route(mux, "POST /v1/calls/{id}/resume", h.holdRoute(false)) // hold.go
	h.route(mux, "POST /v1/calls/{id}/codec", h.codec)             // hold.go
	h.route(mux, "POST /v1/calls/{id}/transfer", h.transfer)
	h.route(mux, "GET /v1/events", h.events)
	h.route(mux, "POST /v1/handoffs", h.pull)
	h.route(mux, "GET /v1/handoffs", h.getHandoffs)
	h.route(mux, "GET /v1/handoffs/{id}", h.getHandoff)
	h.route(mux, "GET /v1/sessions", h.getSessions)
	h.route(mux, "POST /v1/rebind", h.rebind)
	h.route(mux, "GET /v1/endpoints", h.getEndpoints)
	h.route(mux, "/v1/endpoints/{user}/{device}/{rest...}", h.forEndpoint)
	h.mux = mux
	return h
}

// route registers fn so that it marks the request as routed: the mux's own
// 404 and 405 answers (which are plain text) are then rewritten as JSON by
// ServeHTTP, while the routes' answers pass untouched.
func (h *handler) route(mux *http.ServeMux, pattern string, fn http.HandlerFunc) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if u, ok := w.(*unroutedWriter); ok {
			u.routed = true
			w = u.ResponseWriter
		}
		fn(w, r)
	})
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Browsers send Origin on every POST, same-origin or not, and curl or
	// the Client never do: refusing it stops a web page (including one that
	// rebinds its DNS name to 127.0.0.1) from placing or ending calls.
	if r.Method == http.MethodPost && r.Header.Get("Origin") != "" {
		h.fail(w, r, fmt.Errorf("%w (Origin %q)", ErrForbidden, r.Header.Get("Origin")))
		return
	}
	u := &unroutedWriter{ResponseWriter: w}
	h.mux.ServeHTTP(u, r)
	if u.routed {
		return
	}
	switch u.status {
	case http.StatusNotFound:
		h.fail(w, r, fmt.Errorf("%w: %s", ErrNotFound, r.URL.Path))
	case http.StatusMethodNotAllowed:
		// The mux has set Allow already.
		h.fail(w, r, fmt.Errorf("%w: %s %s", ErrMethodNotAllowed, r.Method, r.URL.Path))
	}
}

// unroutedWriter swallows the mux's plain-text 404/405 so ServeHTTP can
// answer them in JSON; anything else (a path-cleaning redirect) passes.
type unroutedWriter struct {
	http.ResponseWriter
	routed bool
	status int
}

func (u *unroutedWriter) WriteHeader(code int) {
	if code == http.StatusNotFound || code == http.StatusMethodNotAllowed {
		u.status = code
		return
	}
	u.ResponseWriter.WriteHeader(code)
}

func (u *unroutedWriter) Write(p []byte) (int, error) {
	if u.status != 0 {
		return len(p), nil
	}
	return u.ResponseWriter.Write(p)
}

func (u *unroutedWriter) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// EndpointList is the body of GET /v1/endpoints.
type EndpointList struct {
	Endpoints []string `json:"endpoints"`
}

func (h *handler) getEndpoints(w http.ResponseWriter, r *http.Request) {
	if h.eps == nil {
		h.fail(w, r, fmt.Errorf("%w: this process serves one endpoint; drop --endpoint", ErrNoSuchEndpoint))
		return
	}
	ids := h.eps.EndpointIDs()
	if ids == nil {
		ids = []string{}
	}
	h.reply(w, r, http.StatusOK, EndpointList{Endpoints: ids})
}

// forEndpoint serves /v1/endpoints/{user}/{device}/REST as /v1/REST of the
// one-endpoint API for that endpoint, so every route (and every route
// added later) exists per endpoint without a second copy.
func (h *handler) forEndpoint(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("user") + "/" + r.PathValue("device")
	if h.eps == nil {
		h.fail(w, r, fmt.Errorf("%w: %q: this process serves one endpoint; drop --endpoint", ErrNoSuchEndpoint, id))
		return
	}
	ep, err := h.eps.Endpoint(id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sub := newHandler(Options{Endpoint: ep, Logger: h.log}, h.done)
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/v1/" + r.PathValue("rest")
	r2.URL.RawPath = ""
	sub.ServeHTTP(w, r2)
}

func (h *handler) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok")
}

func (h *handler) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if h.metrics == nil {
		h.fail(w, r, ErrNoMetrics)
		return
	}
	h.metrics.ServeHTTP(w, r)
}

func (h *handler) getStatus(w http.ResponseWriter, r *http.Request) {
	switch {
	case h.status != nil:
		h.reply(w, r, http.StatusOK, h.status())
	case h.ep != nil:
		h.reply(w, r, http.StatusOK, h.ep.Status())
	default:
		h.fail(w, r, ErrNoEndpoint)
	}
}

func (h *handler) getBuddies(w http.ResponseWriter, r *http.Request) {
	if h.ep == nil {
		h.fail(w, r, ErrNoEndpoint)
		return
	}
	b := h.ep.Buddies()
	if b == nil {
		b = []endpoint.BuddyInfo{} // [] rather than null: easier for scripts
	}
	h.reply(w, r, http.StatusOK, b)
}

func (h *handler) getCalls(w http.ResponseWriter, r *http.Request) {
	if h.ep == nil {
		h.fail(w, r, ErrNoEndpoint)
		return
	}
	c := h.ep.Calls()
	if c == nil {
		c = []endpoint.CallInfo{}
	}
	h.reply(w, r, http.StatusOK, c)
}

func (h *handler) getCall(w http.ResponseWriter, r *http.Request) {
	if h.ep == nil {
		h.fail(w, r, ErrNoEndpoint)
		return
	}
	ci, err := h.ep.Call(r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, r, http.StatusOK, ci)
}

// DialRequest is the body of POST /v1/calls.
type DialRequest struct {
	// To is "user" (any online device of that user) or "user/device".
	To string `json:"to"`
	// Number is a telephone number for To to dial onward when To is a
	// gateway's trunk device (e.g. "+15551234"); optional.
	Number string `json:"number,omitempty"`
}

func (h *handler) dial(w http.ResponseWriter, r *http.Request) {
	if h.ep == nil {
		h.fail(w, r, ErrNoEndpoint)
		return
	}
	var req DialRequest
	if err := decodeBody(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	if strings.TrimSpace(req.To) == "" {
		h.fail(w, r, fmt.Errorf("%w: missing \"to\" (user or user/device)", ErrBadRequest))
		return
	}
	// The request context bounds the dial: a client that gives up (or its
	// timeout) cancels the invite.
	ci, err := h.ep.DialWith(r.Context(), req.To, endpoint.CallOptions{Number: req.Number})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/calls/"+url.PathEscape(ci.ID))
	h.reply(w, r, http.StatusCreated, ci)
}

func (h *handler) answer(w http.ResponseWriter, r *http.Request) {
	if h.ep == nil {
		h.fail(w, r, ErrNoEndpoint)
		return
	}
	id := r.PathValue("id")
	if err := h.ep.Answer(r.Context(), id); err != nil {
		h.fail(w, r, err)
		return
	}
	ci, err := h.ep.Call(id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, r, http.StatusOK, ci)
}

func (h *handler) hangup(w http.ResponseWriter, r *http.Request) {
	if h.ep == nil {
		h.fail(w, r, ErrNoEndpoint)
		return
	}
	id := r.PathValue("id")
	if err := h.ep.Hangup(r.Context(), id); err != nil {
		h.fail(w, r, err)
		return
	}
	ci, err := h.ep.Call(id)
	if errors.Is(err, endpoint.ErrNoSuchCall) {
		// The hangup succeeded and the endpoint already forgot the call:
		// that is still a success, and the call is over.
		ci, err = endpoint.CallInfo{ID: id, State: endpoint.CallEnded.String()}, nil
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, r, http.StatusOK, ci)
}

// pull takes a call from another device of this user (DESIGN.md §2). The
// request context bounds it, like a dial: a client that gives up cancels the
// handoff, which then rolls back (the call stays on the other device).
func (h *handler) pull(w http.ResponseWriter, r *http.Request) {
	if h.ep == nil {
		h.fail(w, r, ErrNoEndpoint)
		return
	}
	var req endpoint.PullRequest
	if err := decodeBody(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	if strings.TrimSpace(req.From) == "" {
		h.fail(w, r, fmt.Errorf("%w: missing \"from\" (a device of this user)", ErrBadRequest))
		return
	}
	info, err := h.ep.Pull(r.Context(), req)
	h.handoffCreated(w, r, info, err)
}

// push sends a call to another device of this user, which pulls it (issue
// 9 §1). The request context bounds the wait for the target's report; the
// answer follows the pull's rule: 201 with the push's HandoffInfo once the
// offer reached the target, whatever the outcome.
func (h *handler) push(w http.ResponseWriter, r *http.Request) {
	if h.ep == nil {
		h.fail(w, r, ErrNoEndpoint)
		return
	}
	var req endpoint.PushRequest
	if err := decodeBody(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	if strings.TrimSpace(req.To) == "" {
		h.fail(w, r, fmt.Errorf("%w: missing \"to\" (a device of this user)", ErrBadRequest))
		return
	}
	req.CallID = r.PathValue("id")
	info, err := h.ep.Push(r.Context(), req)
	h.handoffCreated(w, r, info, err)
}

// TransferRequest is the body of POST /v1/calls/{id}/transfer.
type TransferRequest struct {
	// To is the transfer target: a user ("carol") or user/device.
	To string `json:"to,omitempty"`
	// Attended, instead of To, is this endpoint's other active call: its
	// far party is the target, and that call is replaced (an attended
	// transfer, RFC 5589 §7).
	Attended string `json:"attended,omitempty"`
}

// transfer asks the far party of a call to call another person and take
// this device's place (a blind transfer, issue 9 §2), or, with attended,
// the far party of this device's other call, replacing that call. The request context
// bounds the wait for the transferee's report. 200 with the TransferInfo
// once it is done (the call here has ended); an error answer otherwise,
// and the call stays.
func (h *handler) transfer(w http.ResponseWriter, r *http.Request) {
	if h.ep == nil {
		h.fail(w, r, ErrNoEndpoint)
		return
	}
	var req TransferRequest
	if err := decodeBody(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	to, attended := strings.TrimSpace(req.To), strings.TrimSpace(req.Attended)
	switch {
	case to == "" && attended == "":
		h.fail(w, r, fmt.Errorf("%w: missing \"to\" (the user or user/device to transfer the call to) or \"attended\" (the other call to join it with)", ErrBadRequest))
		return
	case to != "" && attended != "":
		h.fail(w, r, fmt.Errorf("%w: \"to\" and \"attended\" together: a transfer is blind (to) or attended (the other call's far party is the target)", ErrBadRequest))
		return
	}
	var info endpoint.TransferInfo
	var err error
	if attended != "" {
		info, err = h.ep.TransferAttended(r.Context(), r.PathValue("id"), attended)
	} else {
		info, err = h.ep.Transfer(r.Context(), r.PathValue("id"), to)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, r, http.StatusOK, info)
}

// RebindRequest is the body of POST /v1/rebind.
type RebindRequest struct {
	// IP is the new local address for media, "127.0.0.7" or "::1".
	IP string `json:"ip"`
}

// rebind moves this endpoint's media to a new local IP (mobility,
// DESIGN.md §2 steps 8-12).
func (h *handler) rebind(w http.ResponseWriter, r *http.Request) {
	if h.ep == nil {
		h.fail(w, r, ErrNoEndpoint)
		return
	}
	var req RebindRequest
	if err := decodeBody(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	if strings.TrimSpace(req.IP) == "" {
		h.fail(w, r, fmt.Errorf("%w: missing \"ip\" (the new local address for media)", ErrBadRequest))
		return
	}
	ip, err := netip.ParseAddr(req.IP)
	if err != nil {
		h.fail(w, r, fmt.Errorf("%w: \"ip\": %q is not an IP address", ErrBadRequest, req.IP))
		return
	}
	info, err := h.ep.Rebind(r.Context(), ip)
	h.handoffCreated(w, r, info, err)
}

// handoffCreated answers a pull or rebind. An attempt that was made is a
// resource whatever its outcome: 201 with the HandoffInfo, whose state says
// done, failed, rolled-back or call-ended and whose error says why. Only an
// attempt that was never made (no id) is an error answer.
func (h *handler) handoffCreated(w http.ResponseWriter, r *http.Request, info endpoint.HandoffInfo, err error) {
	if info.ID == "" {
		if err == nil {
			err = fmt.Errorf("control: %s: the endpoint recorded no handoff", r.URL.Path)
		}
		h.fail(w, r, err)
		return
	}
	if err != nil {
		// The endpoint logged the failure; the answer carries it.
		h.log.Debug("handoff did not complete", "handoff", info.ID, "kind", info.Kind, "state", info.State, "err", err)
	}
	info = stepsArray(info)
	w.Header().Set("Location", "/v1/handoffs/"+url.PathEscape(info.ID))
	h.reply(w, r, http.StatusCreated, info)
}

func (h *handler) getHandoffs(w http.ResponseWriter, r *http.Request) {
	if h.ep == nil && h.handoffs != nil {
		h.reply(w, r, http.StatusOK, h.handoffs())
		return
	}
	if h.ep == nil {
		h.fail(w, r, ErrNoEndpoint)
		return
	}
	list := h.ep.Handoffs()
	if list == nil {
		list = []endpoint.HandoffInfo{}
	}
	for i := range list {
		list[i] = stepsArray(list[i])
	}
	h.reply(w, r, http.StatusOK, list)
}

func (h *handler) getHandoff(w http.ResponseWriter, r *http.Request) {
	if h.ep == nil && h.handoff != nil {
		info, err := h.handoff(r.PathValue("id"))
		if err != nil {
			h.fail(w, r, err)
			return
		}
		h.reply(w, r, http.StatusOK, info)
		return
	}
	if h.ep == nil {
		h.fail(w, r, ErrNoEndpoint)
		return
	}
	info, err := h.ep.Handoff(r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, r, http.StatusOK, stepsArray(info))
}

// stepsArray makes a handoff's steps [] rather than null when it has none
// (one that failed before its first step): easier for scripts.
func stepsArray(info endpoint.HandoffInfo) endpoint.HandoffInfo {
	if info.Steps == nil {
		info.Steps = []endpoint.StepInfo{}
	}
	return info
}

// getSessions asks another device of this user which sessions it has (the
// session query of step 2, without pulling).
func (h *handler) getSessions(w http.ResponseWriter, r *http.Request) {
	if h.ep == nil {
		h.fail(w, r, ErrNoEndpoint)
		return
	}
	device := r.URL.Query().Get("device")
	if strings.TrimSpace(device) == "" {
		h.fail(w, r, fmt.Errorf("%w: missing ?device= (a device of this user)", ErrBadRequest))
		return
	}
	list, err := h.ep.Sessions(r.Context(), device)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if list == nil {
		list = []endpoint.SessionInfo{}
	}
	h.reply(w, r, http.StatusOK, list)
}

// events streams the endpoint's events as NDJSON, one object per line,
// flushed after each, until the client goes away, the subscription is
// dropped (a subscriber that fell behind) or the server closes.
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	if h.ep == nil && h.devEvents != nil {
		h.deviceEvents(w, r)
		return
	}
	if h.ep == nil {
		h.fail(w, r, ErrNoEndpoint)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodHead {
		// The GET pattern also serves HEAD; a stream without a body would
		// only hold a subscription open for nothing.
		w.WriteHeader(http.StatusOK)
		return
	}
	filter := r.URL.Query().Get("type")
	ch, cancel := h.ep.Subscribe()
	defer cancel()
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	// Flush the headers now so the client knows the stream is open before
	// the first event.
	if err := rc.Flush(); err != nil {
		h.log.Debug("events: flush headers", "err", err)
		return
	}
	enc := newEventEncoder()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-h.done:
			return
		case ev, ok := <-ch:
			if !ok {
				h.log.Warn("events: subscriber fell behind, stream ended", "remote", r.RemoteAddr)
				return
			}
			line, err := enc.line(ev, filter)
			if err != nil {
				h.log.Error("events: encode", "type", ev.Type, "err", err)
				continue
			}
			if line == nil {
				continue // filtered out
			}
			// Not every ResponseWriter supports deadlines (httptest's
			// recorder does not); the stream still works without one.
			_ = rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
			if _, err := w.Write(line); err != nil {
				h.log.Debug("events: client gone", "err", err)
				return
			}
			if err := rc.Flush(); err != nil {
				h.log.Debug("events: client gone", "err", err)
				return
			}
		}
	}
}

// deviceEvents streams a gateway's device events (Options.Events) as
// events streams an endpoint's: NDJSON, ?type= a prefix filter.
func (h *handler) deviceEvents(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	filter := r.URL.Query().Get("type")
	ch, cancel := h.devEvents()
	defer cancel()
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return
	}
	enc := newEventEncoder()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-h.done:
			return
		case ev, ok := <-ch:
			if !ok {
				h.log.Warn("events: subscriber fell behind, stream ended", "remote", r.RemoteAddr)
				return
			}
			if !strings.HasPrefix(ev.Type, filter) {
				continue
			}
			enc.buf.Reset()
			if err := enc.enc.Encode(ev); err != nil {
				h.log.Error("events: encode", "type", ev.Type, "err", err)
				continue
			}
			_ = rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
			if _, err := w.Write(enc.buf.Bytes()); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

// eventEncoder turns events into NDJSON lines, reusing one buffer for the
// life of a stream.
type eventEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

func newEventEncoder() *eventEncoder {
	e := &eventEncoder{}
	e.enc = json.NewEncoder(&e.buf)
	// Details such as "127.0.0.2:40000 -> 127.0.0.7:40002" stay readable
	// for a person tailing the stream with curl.
	e.enc.SetEscapeHTML(false)
	return e
}

// line returns ev as one newline-terminated JSON line, or nil when its type
// does not start with filter. The line is valid until the next call.
func (e *eventEncoder) line(ev endpoint.Event, filter string) ([]byte, error) {
	if !strings.HasPrefix(ev.Type, filter) {
		return nil, nil
	}
	e.buf.Reset()
	if err := e.enc.Encode(ev); err != nil { // Encode ends the line with '\n'
		return nil, fmt.Errorf("control: encode event %s: %w", ev.Type, err)
	}
	return e.buf.Bytes(), nil
}

// decodeBody decodes a bounded JSON body strictly: unknown fields, trailing
// data and oversized bodies are errors, so a typo never silently dials the
// wrong thing.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return bodyError(err)
		}
		return fmt.Errorf("%w: trailing data after the JSON object", ErrBadRequest)
	}
	return nil
}

func bodyError(err error) error {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return fmt.Errorf("%w: limit is %d bytes", ErrBodyTooLarge, tooLarge.Limit)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w: empty body, want a JSON object", ErrBadRequest)
	}
	return fmt.Errorf("%w: %w", ErrBadRequest, err)
}

// reply writes v as JSON with the given status.
func (h *handler) reply(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		h.fail(w, r, fmt.Errorf("control: encode response: %w", err))
		return
	}
	writeJSON(w, status, append(b, '\n'))
}

// fail answers err as a JSON error with its mapped status and code, and logs
// it: this is where control API errors are handled.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code := classify(err)
	level := slog.LevelInfo
	switch {
	case r.Context().Err() != nil:
		level = slog.LevelDebug // the client went away; nobody reads this answer
	case status >= 500:
		level = slog.LevelWarn
	}
	h.log.Log(r.Context(), level, "request failed",
		"method", r.Method, "path", r.URL.Path, "status", status, "code", code, "err", err)
	b, merr := json.Marshal(errorBody{Error: err.Error(), Code: code})
	if merr != nil { // cannot happen for two strings; keep the answer valid anyway
		b = []byte(`{"error":"internal error","code":"internal"}`)
	}
	writeJSON(w, status, append(b, '\n'))
}

func writeJSON(w http.ResponseWriter, status int, b []byte) {
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Del("Content-Length")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// promLogger adapts slog to promhttp's logger.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }
