package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/baton-voice/baton/p2p/endpoint"
)

const (
	// maxResponseBytes bounds a unary answer (a large call list is a few
	// hundred KiB).
	maxResponseBytes = 8 << 20
	// maxEventLine bounds one NDJSON line of the event stream.
	maxEventLine = 1 << 20
)

// Client talks to a control API. It is safe for concurrent use. It holds no
// idle connections (the admin API is on loopback; a fresh connection per
// request costs nothing and leaves nothing to close).
type Client struct {
	base    string // scheme://host[:port][/prefix], no trailing slash
	addr    string // host:port, for messages
	timeout time.Duration
	hc      *http.Client
	err     error  // a bad address, reported by every call
	prefix  string // "/v1/endpoints/USER/DEVICE" for ForEndpoint, else ""
}

// NewClient returns a client for the control API at addr: "127.0.0.1:7081"
// or a full URL "http://127.0.0.1:7081". timeout bounds each request
// (connect, answer and body), except the event stream, where it bounds only
// connecting and the response headers; 0 means no bound beyond ctx.
func NewClient(addr string, timeout time.Duration) *Client {
	c := &Client{timeout: timeout, addr: addr}
	raw := addr
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		c.err = fmt.Errorf("control: admin address %q: %w: %w", addr, ErrInvalidArgument, err)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		c.err = fmt.Errorf("control: admin address %q: %w: want HOST:PORT or http://HOST:PORT", addr, ErrInvalidArgument)
	default:
		c.base = u.Scheme + "://" + u.Host + strings.TrimRight(u.Path, "/")
		c.addr = u.Host
	}
	dialer := &net.Dialer{Timeout: timeout}
	c.hc = &http.Client{Transport: &http.Transport{
		Proxy:                 nil, // the admin API is local: never via a proxy
		DialContext:           dialer.DialContext,
		ResponseHeaderTimeout: timeout,
		DisableKeepAlives:     true,
	}}
	return c
}

// ForEndpoint returns a client whose calls address one endpoint of a
// process that serves many (a gateway's device "alice/desk"): /v1/calls
// becomes /v1/endpoints/alice/desk/calls, and so on. /healthz, /metrics
// and Endpoints stay the process's.
func (c *Client) ForEndpoint(id string) *Client {
	cc := *c
	user, device, ok := strings.Cut(id, "/")
	if !ok || user == "" || device == "" || strings.Contains(device, "/") {
		cc.err = fmt.Errorf("control: endpoint %q: %w: want USER/DEVICE", id, ErrInvalidArgument)
		return &cc
	}
	cc.prefix = "/v1/endpoints/" + url.PathEscape(user) + "/" + url.PathEscape(device)
	return &cc
}

// Endpoints lists the endpoints a multi-endpoint process serves now.
func (c *Client) Endpoints(ctx context.Context) ([]string, error) {
	var out EndpointList
	cc := *c
	cc.prefix = ""
	if err := cc.do(ctx, http.MethodGet, "/v1/endpoints", nil, http.StatusOK, &out); err != nil {
		return nil, err
	}
	return out.Endpoints, nil
}

// Status returns the process status as raw JSON: its shape depends on the
// process (endpoint.StatusInfo for endpoints).
func (c *Client) Status(ctx context.Context) (json.RawMessage, error) {
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/v1/status", nil, http.StatusOK, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// Buddies returns the buddy list, the user's own other devices included.
func (c *Client) Buddies(ctx context.Context) ([]endpoint.BuddyInfo, error) {
	var b []endpoint.BuddyInfo
	if err := c.do(ctx, http.MethodGet, "/v1/buddies", nil, http.StatusOK, &b); err != nil {
		return nil, err
	}
	return b, nil
}

// Calls returns every call the endpoint knows.
func (c *Client) Calls(ctx context.Context) ([]endpoint.CallInfo, error) {
	var calls []endpoint.CallInfo
	if err := c.do(ctx, http.MethodGet, "/v1/calls", nil, http.StatusOK, &calls); err != nil {
		return nil, err
	}
	return calls, nil
}

// Call returns one call.
func (c *Client) Call(ctx context.Context, id string) (endpoint.CallInfo, error) {
	return c.callOp(ctx, http.MethodGet, id, "", http.StatusOK)
}

// Dial calls to ("user" or "user/device") and returns once the invite is
// sent or ringing; the call then proceeds on its own (watch Events or Call).
func (c *Client) Dial(ctx context.Context, to string) (endpoint.CallInfo, error) {
	return c.DialNumber(ctx, to, "")
}

// DialNumber is Dial asking to (a gateway's trunk device) to dial number
// onward.
func (c *Client) DialNumber(ctx context.Context, to, number string) (endpoint.CallInfo, error) {
	var ci endpoint.CallInfo
	err := c.do(ctx, http.MethodPost, "/v1/calls", DialRequest{To: to, Number: number}, http.StatusCreated, &ci)
	return ci, err
}

// Answer answers an incoming ringing call and returns its updated state.
func (c *Client) Answer(ctx context.Context, id string) (endpoint.CallInfo, error) {
	return c.callOp(ctx, http.MethodPost, id, "/answer", http.StatusOK)
}

// Hangup ends a call (or rejects an incoming one, or cancels an outgoing
// one) and returns its updated state.
func (c *Client) Hangup(ctx context.Context, id string) (endpoint.CallInfo, error) {
	return c.callOp(ctx, http.MethodPost, id, "/hangup", http.StatusOK)
}

func (c *Client) callOp(ctx context.Context, method, id, action string, want int) (endpoint.CallInfo, error) {
	var ci endpoint.CallInfo
	if id == "" {
		return ci, fmt.Errorf("control: %w: empty call id", ErrInvalidArgument)
	}
	err := c.do(ctx, method, "/v1/calls/"+url.PathEscape(id)+action, nil, want, &ci)
	return ci, err
}

// Pull takes a live call from another device of this user (the handoff of
// DESIGN.md §2) and returns when the handoff is over. The request's
// lifetime bounds it: a client timeout shorter than the handoff's own
// timers cancels it (it then rolls back).
//
// An attempt that was made returns its HandoffInfo even when it did not
// take the call; the error is then a *HandoffError naming its state and
// cause, which matches endpoint.ErrHandoffFailed. An attempt refused
// outright (bad request, unknown device) returns an *APIError and a zero
// HandoffInfo.
func (c *Client) Pull(ctx context.Context, req endpoint.PullRequest) (endpoint.HandoffInfo, error) {
	return c.handoffOp(ctx, "/v1/handoffs", req)
}

// Push sends call id to another device of this user (its name, or
// user/device), which takes it with a pull, and returns when the target
// has reported. Its result follows Pull's rule: the push's HandoffInfo
// (kind "push", the target's steps) and a *HandoffError unless it is done;
// an *APIError when no offer was made (no such call, target offline).
func (c *Client) Push(ctx context.Context, id, to string) (endpoint.HandoffInfo, error) {
	if id == "" {
		return endpoint.HandoffInfo{}, fmt.Errorf("control: %w: empty call id", ErrInvalidArgument)
	}
	return c.handoffOp(ctx, "/v1/calls/"+url.PathEscape(id)+"/push", endpoint.PushRequest{To: to})
}

// Transfer asks the far party of call id to call to (a user, or
// user/device) and take this device's place, and returns when the
// transferee has reported: the TransferInfo when it is done (the call
// here has ended), else an *APIError whose code classifies the failure
// (endpoint.ErrForbidden, ErrBusy, ErrNoSuchCall...); the call then stays.
func (c *Client) Transfer(ctx context.Context, id, to string) (endpoint.TransferInfo, error) {
	var info endpoint.TransferInfo
	if id == "" {
		return info, fmt.Errorf("control: %w: empty call id", ErrInvalidArgument)
	}
	err := c.do(ctx, http.MethodPost, "/v1/calls/"+url.PathEscape(id)+"/transfer", TransferRequest{To: to}, http.StatusOK, &info)
	return info, err
}

// TransferAttended joins the far parties of calls id and id2 (an
// attended transfer): the far party of id calls the far party of id2,
// replacing call id2; both calls here end when it is done. Errors are
// Transfer's; both calls then stay.
func (c *Client) TransferAttended(ctx context.Context, id, id2 string) (endpoint.TransferInfo, error) {
	var info endpoint.TransferInfo
	if id == "" || id2 == "" {
		return info, fmt.Errorf("control: %w: empty call id", ErrInvalidArgument)
	}
	err := c.do(ctx, http.MethodPost, "/v1/calls/"+url.PathEscape(id)+"/transfer", TransferRequest{Attended: id2}, http.StatusOK, &info)
	return info, err
}

// Rebind moves the endpoint's media to a new local IP (mobility: the call
// goes on from the new address with no re-login). Its result follows the
// same rule as Pull: the info, and a *HandoffError unless it is done.
func (c *Client) Rebind(ctx context.Context, ip string) (endpoint.HandoffInfo, error) {
	return c.handoffOp(ctx, "/v1/rebind", RebindRequest{IP: ip})
}

func (c *Client) handoffOp(ctx context.Context, path string, in any) (endpoint.HandoffInfo, error) {
	var info endpoint.HandoffInfo
	if err := c.do(ctx, http.MethodPost, path, in, http.StatusCreated, &info); err != nil {
		return endpoint.HandoffInfo{}, err
	}
	return info, handoffResult(info)
}

// Handoffs returns the endpoint's recent handoffs and rebinds, oldest first.
func (c *Client) Handoffs(ctx context.Context) ([]endpoint.HandoffInfo, error) {
	var list []endpoint.HandoffInfo
	if err := c.do(ctx, http.MethodGet, "/v1/handoffs", nil, http.StatusOK, &list); err != nil {
		return nil, err
	}
	return list, nil
}

// HandoffRecords is Handoffs with a gateway's fields (device, role,
// timings, SIP messages; docs/control-api.md): against an endpoint they
// are empty.
func (c *Client) HandoffRecords(ctx context.Context) ([]GatewayHandoff, error) {
	var list []GatewayHandoff
	if err := c.do(ctx, http.MethodGet, "/v1/handoffs", nil, http.StatusOK, &list); err != nil {
		return nil, err
	}
	return list, nil
}

// HandoffRecord is Handoff with a gateway's fields.
func (c *Client) HandoffRecord(ctx context.Context, id string) (GatewayHandoff, error) {
	var info GatewayHandoff
	if id == "" {
		return info, fmt.Errorf("control: %w: empty handoff id", ErrInvalidArgument)
	}
	err := c.do(ctx, http.MethodGet, "/v1/handoffs/"+url.PathEscape(id), nil, http.StatusOK, &info)
	return info, err
}

// Handoff returns one handoff or rebind by id, whatever its state (no
// *HandoffError: reading a failed handoff succeeds).
func (c *Client) Handoff(ctx context.Context, id string) (endpoint.HandoffInfo, error) {
	var info endpoint.HandoffInfo
	if id == "" {
		return info, fmt.Errorf("control: %w: empty handoff id", ErrInvalidArgument)
	}
	err := c.do(ctx, http.MethodGet, "/v1/handoffs/"+url.PathEscape(id), nil, http.StatusOK, &info)
	return info, err
}

// Sessions asks another device of this user (its device name, or
// user/device) which sessions it has, as it would answer a pull.
func (c *Client) Sessions(ctx context.Context, device string) ([]endpoint.SessionInfo, error) {
	var list []endpoint.SessionInfo
	path := "/v1/sessions?" + url.Values{"device": {device}}.Encode()
	if err := c.do(ctx, http.MethodGet, path, nil, http.StatusOK, &list); err != nil {
		return nil, err
	}
	return list, nil
}

// HandoffError is what Pull and Rebind return with a HandoffInfo whose
// state is not "done": the attempt was made and recorded, but did not
// complete. It matches endpoint.ErrHandoffFailed with errors.Is.
type HandoffError struct {
	ID      string // the handoff's id, for GET /v1/handoffs/{id}
	Kind    string // "pull" or "rebind"
	State   string // failed, rolled-back, call-ended (or running)
	Message string // the HandoffInfo's error text, the cause
}

// Error reads like "control: pull h-3f9a0c1d2e4b rolled-back: endpoint:
// handoff failed: rolled back: bob/mobile refused: ...".
func (e *HandoffError) Error() string {
	msg := fmt.Sprintf("control: %s %s %s", e.Kind, e.ID, e.State)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Unwrap makes errors.Is(err, endpoint.ErrHandoffFailed) true.
func (e *HandoffError) Unwrap() error { return endpoint.ErrHandoffFailed }

// handoffResult is nil for a done handoff and a *HandoffError otherwise.
func handoffResult(info endpoint.HandoffInfo) error {
	if info.State == "done" {
		return nil
	}
	kind := info.Kind
	if kind == "" {
		kind = "handoff"
	}
	state := info.State
	if state == "" {
		state = "unknown"
	}
	return &HandoffError{ID: info.ID, Kind: kind, State: state, Message: info.Error}
}

// Healthz checks that the process answers and is healthy.
func (c *Client) Healthz(ctx context.Context) error {
	if c.err != nil {
		return c.err
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	resp, err := c.send(ctx, http.MethodGet, "/healthz", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return readAPIError(resp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return c.transportError(http.MethodGet, "/healthz", err)
	}
	if strings.TrimSpace(string(b)) != "ok" {
		return fmt.Errorf("%w: /healthz at %s said %q, want \"ok\"", ErrBadResponse, c.addr, b)
	}
	return nil
}

// Events streams events (only those whose type starts with filter, when it
// is not empty: "call." for call events) to fn, in order, until ctx ends
// (returns ctx.Err()), fn returns an error (returned as is), or the server
// ends the stream (an error matching ErrStreamEnded). The client's timeout
// bounds only connecting and the response headers, never the stream.
func (c *Client) Events(ctx context.Context, filter string, fn func(endpoint.Event) error) error {
	if c.err != nil {
		return c.err
	}
	if fn == nil {
		return fmt.Errorf("control: events: %w: nil callback", ErrInvalidArgument)
	}
	path := "/v1/events"
	if filter != "" {
		path += "?" + url.Values{"type": {filter}}.Encode()
	}
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return readAPIError(resp)
	}
	var fnErr error
	err = readEvents(resp.Body, func(ev endpoint.Event) error {
		fnErr = fn(ev)
		return fnErr
	})
	switch {
	case fnErr != nil:
		return fnErr
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, ErrBadResponse):
		return fmt.Errorf("control: events from %s: %w", c.addr, err)
	case err != nil:
		return fmt.Errorf("control: events from %s: %w: %w", c.addr, ErrStreamEnded, err)
	}
	return fmt.Errorf("control: events from %s: %w", c.addr, ErrStreamEnded)
}

// readEvents decodes an NDJSON stream, calling fn for each event. Blank lines
// are skipped (room for heartbeats); unknown fields are ignored so newer
// servers work with older clients. It returns nil at a clean end of stream.
func readEvents(r io.Reader, fn func(endpoint.Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxEventLine)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var ev endpoint.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			return fmt.Errorf("%w: event line: %w", ErrBadResponse, err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return fmt.Errorf("%w: event line longer than %d bytes", ErrBadResponse, maxEventLine)
	}
	return sc.Err()
}

// bound applies the per-request timeout.
func (c *Client) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout > 0 {
		return context.WithTimeout(ctx, c.timeout)
	}
	return context.WithCancel(ctx)
}

// do sends one unary request and decodes a want-status answer into out.
func (c *Client) do(ctx context.Context, method, path string, in any, want int, out any) error {
	if c.err != nil {
		return c.err
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return readAPIError(resp)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return c.transportError(method, path, err)
	}
	if len(body) > maxResponseBytes {
		return fmt.Errorf("%w: %s %s: answer larger than %d bytes", ErrBadResponse, method, path, maxResponseBytes)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%w: %s %s: %w", ErrBadResponse, method, path, err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("control: %s %s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	full := path
	if c.prefix != "" {
		if rest, ok := strings.CutPrefix(path, "/v1/"); ok {
			full = c.prefix + "/" + rest
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+full, body)
	if err != nil {
		return nil, fmt.Errorf("control: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(method, path, err)
	}
	return resp, nil
}

// transportError explains a failure to talk to the server at all; a refused
// connection gets the hint a person needs.
func (c *Client) transportError(method, path string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its text repeats the method and URL
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%w at %s (is baton running with --admin %s?): %w", ErrNotRunning, c.addr, c.addr, err)
	}
	return fmt.Errorf("control: %s %s%s: %w", method, c.addr, path, err)
}

// readAPIError turns an error answer into an *APIError. A JSON error body
// gives the code and message; anything else (a proxy, not Baton) gives a
// code derived from the status and the start of the body as message.
func readAPIError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes))
	return decodeAPIError(resp.StatusCode, b)
}

func decodeAPIError(status int, b []byte) *APIError {
	var eb errorBody
	if err := json.Unmarshal(b, &eb); err == nil && eb.Code != "" {
		return &APIError{Status: status, Code: eb.Code, Message: eb.Error}
	}
	msg := strings.TrimSpace(string(b))
	if len(msg) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut-- // never split a character
		}
		msg = msg[:cut] + "..."
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &APIError{Status: status, Code: codeForStatus(status), Message: msg}
}
