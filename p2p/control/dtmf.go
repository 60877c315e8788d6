package control

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/p2p/wire"
)

// DTMFResult answers POST /v1/calls/{id}/dtmf: the digits went to Peer.
type DTMFResult struct {
	CallID     string `json:"call_id"`
	Peer       string `json:"peer"`
	Digits     string `json:"digits"`
	DurationMS int    `json:"duration_ms"`
}

// dtmf sends digits to the far party of an active call (docs/protocol.md
// §14). Bad digits are 400 invalid-dtmf, naming the character; a call that
// is not active is 409 bad-state.
func (h *handler) dtmf(w http.ResponseWriter, r *http.Request) {
	if h.ep == nil {
		h.fail(w, r, ErrNoEndpoint)
		return
	}
	var req endpoint.DTMFRequest
	if err := decodeBody(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	if err := h.ep.SendDTMF(r.Context(), id, req); err != nil {
		h.fail(w, r, err)
		return
	}
	res := DTMFResult{CallID: id, Digits: req.Digits, DurationMS: req.DurationMS}
	if res.DurationMS == 0 {
		res.DurationMS = wire.DefaultDTMFDurationMS
	}
	if ci, err := h.ep.Call(id); err == nil {
		res.Peer = ci.Peer
	}
	h.reply(w, r, http.StatusOK, res)
}

// DTMF sends digits (0-9 * # A-D, at most 32) to the far party of active
// call id, each lasting durationMS (0: 100 ms). The far party reports each
// digit as a call.dtmf event. Bad digits come back as an *APIError that
// matches endpoint.ErrInvalidDTMF and names the character.
func (c *Client) DTMF(ctx context.Context, id, digits string, durationMS int) (DTMFResult, error) {
	var res DTMFResult
	if id == "" {
		return res, fmt.Errorf("control: %w: empty call id", ErrInvalidArgument)
	}
	err := c.do(ctx, http.MethodPost, "/v1/calls/"+url.PathEscape(id)+"/dtmf",
		endpoint.DTMFRequest{Digits: digits, DurationMS: durationMS}, http.StatusOK, &res)
	return res, err
}
