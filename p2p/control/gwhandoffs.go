package control

import (
	"time"

	"github.com/baton-voice/baton/p2p/endpoint"
)

// SIPMessage is one SIP message a gateway sent or received, as its
// handoff log records it: the first line and two headers, never a body or
// an Authorization header.
type SIPMessage struct {
	Time time.Time `json:"time"`
	// Dir is "sent" or "received".
	Dir string `json:"dir"`
	// Method is a request's method ("INVITE", "BYE"); empty for a response.
	Method string `json:"method,omitempty"`
	// Status is a response's status code; 0 for a request.
	Status int    `json:"status,omitempty"`
	CallID string `json:"call_id"`
	CSeq   string `json:"cseq"`
	// Remote is the address of the other side ("127.0.0.1:5070"), with
	// the transport ("udp:127.0.0.1:5070").
	Remote string `json:"remote"`
}

// GatewayHandoff is one handoff or transfer as a gateway's GET
// /v1/handoffs serves it: the fields of endpoint.HandoffInfo (an
// endpoint's own handoffs decode into it unchanged, with the gateway's
// fields empty), and what the gateway adds (docs/control-api.md).
type GatewayHandoff struct {
	endpoint.HandoffInfo
	// Device is the gateway's device that took part ("alice/desk").
	Device string `json:"device,omitempty"`
	// Role is the part the gateway played for Device: "A" (it took the
	// call), "B" (the call was taken from it), "C" (the far party),
	// "transferor", "transferee" or "target".
	Role string `json:"role,omitempty"`
	// SIPCallIDs are the SIP dialogs of the calls involved.
	SIPCallIDs []string `json:"sip_call_ids,omitempty"`
	// TimeToCommitMS is the time from the start to the commit (the step
	// after which the call is on its new device), when it committed.
	TimeToCommitMS float64 `json:"time_to_commit_ms,omitempty"`
	// GapHeardByCMS is the longest interval between two RTP packets the
	// gateway sent toward C during the handoff, when the gateway is C or
	// relays to C (nil otherwise).
	GapHeardByCMS *float64 `json:"gap_heard_by_c_ms,omitempty"`
	// SIPMessages are the messages on SIPCallIDs inside the handoff's
	// window (docs/control-api.md); for role C none, which is the point.
	SIPMessages []SIPMessage `json:"sip_messages"`
}
