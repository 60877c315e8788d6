package control

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/baton-voice/baton/p2p/endpoint"
)

// ErrNotImplemented means the endpoint behind this API cannot do what
// was asked (it has no in-call media updates): 501 not-implemented.
var ErrNotImplemented = errors.New("control: not implemented by this endpoint")

// CodeNotImplemented and CodeMediaRefused are the error codes of the
// media update routes: the endpoint has no media updates (501), the peer
// refused the update (409; the message carries its code and reason).
const (
	CodeNotImplemented = "not-implemented"
	CodeMediaRefused   = "media-refused"
)

// CodecRequest is the body of POST /v1/calls/{id}/codec.
type CodecRequest struct {
	Codec string `json:"codec"`
}

func (h *handler) updater() (endpoint.MediaUpdater, error) {
	if h.ep == nil {
		return nil, ErrNoEndpoint
	}
	u, ok := h.ep.(endpoint.MediaUpdater)
	if !ok {
		return nil, fmt.Errorf("%w: in-call media updates (hold, resume, codec)", ErrNotImplemented)
	}
	return u, nil
}

// hold serves POST /v1/calls/{id}/hold and /resume (docs/protocol.md §17):
// it returns once the far party has acknowledged, with the call.
func (h *handler) holdRoute(hold bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, err := h.updater()
		if err != nil {
			h.fail(w, r, err)
			return
		}
		id := r.PathValue("id")
		if err := u.Hold(r.Context(), id, hold); err != nil {
			h.fail(w, r, err)
			return
		}
		h.replyCall(w, r, id)
	}
}

// codec serves POST /v1/calls/{id}/codec {"codec":"PCMA"}: both parties
// switch to a codec both offered at call setup.
func (h *handler) codec(w http.ResponseWriter, r *http.Request) {
	u, err := h.updater()
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var req CodecRequest
	if err := decodeBody(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	if req.Codec == "" {
		h.fail(w, r, fmt.Errorf("%w: codec is required", ErrBadRequest))
		return
	}
	id := r.PathValue("id")
	if err := u.SetCodec(r.Context(), id, req.Codec); err != nil {
		h.fail(w, r, err)
		return
	}
	h.replyCall(w, r, id)
}

func (h *handler) replyCall(w http.ResponseWriter, r *http.Request, id string) {
	ci, err := h.ep.Call(id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, r, http.StatusOK, ci)
}

// Hold puts call id on hold and returns the call once the far party has
// acknowledged (media_direction sendonly, or inactive when it holds too).
func (c *Client) Hold(ctx context.Context, id string) (endpoint.CallInfo, error) {
	return c.callOp(ctx, http.MethodPost, id, "/hold", http.StatusOK)
}

// Resume takes call id off hold.
func (c *Client) Resume(ctx context.Context, id string) (endpoint.CallInfo, error) {
	return c.callOp(ctx, http.MethodPost, id, "/resume", http.StatusOK)
}

// SetCodec switches call id to codec (one both parties offered).
func (c *Client) SetCodec(ctx context.Context, id, codec string) (endpoint.CallInfo, error) {
	var ci endpoint.CallInfo
	if id == "" {
		return ci, fmt.Errorf("control: %w: empty call id", ErrInvalidArgument)
	}
	err := c.do(ctx, http.MethodPost, "/v1/calls/"+url.PathEscape(id)+"/codec", CodecRequest{Codec: codec}, http.StatusOK, &ci)
	return ci, err
}
