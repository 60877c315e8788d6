package control

import (
	"fmt"
	"io"
	"strconv"
	"strings"
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
	TimeToCommitMS *float64 `json:"time_to_commit_ms,omitempty"`
	// GapHeardByCMS is the longest interval between two RTP packets the
	// gateway sent toward C during the handoff, when the gateway is C, or
	// relays to C because C is another of its devices (a trunk's caller);
	// nil otherwise.
	GapHeardByCMS *float64 `json:"gap_heard_by_c_ms,omitempty"`
	// SIPMessages are the messages on SIPCallIDs inside the handoff's
	// window (docs/control-api.md); for role C none, which is the point.
	SIPMessages []SIPMessage `json:"sip_messages"`
}

// PrintHandoffRecord writes a handoff as PrintHandoff does, then what a
// gateway adds: the device and role, the timings and the SIP messages,
// one a line:
//
//	gateway: alice/desk as B  commit after 41.20 ms
//	  sip  +52.10 ms  sent      BYE          1 BYE    udp:127.0.0.1:5070  call 8a1f...
//	  sip  +53.00 ms  received  200          1 BYE    udp:127.0.0.1:5070  call 8a1f...
func PrintHandoffRecord(w io.Writer, h GatewayHandoff) error {
	if err := PrintHandoff(w, h.HandoffInfo); err != nil {
		return err
	}
	if h.Role == "" && h.Device == "" {
		return nil // an endpoint's own handoff
	}
	var b strings.Builder
	b.WriteString("gateway: ")
	b.WriteString(dash(h.Device))
	b.WriteString(" as ")
	b.WriteString(dash(h.Role))
	if h.TimeToCommitMS != nil {
		fmt.Fprintf(&b, "  commit after %.2f ms", *h.TimeToCommitMS)
	}
	if h.GapHeardByCMS != nil {
		fmt.Fprintf(&b, "  longest gap heard by C %.2f ms", *h.GapHeardByCMS)
	}
	b.WriteByte('\n')
	if len(h.SIPMessages) == 0 {
		b.WriteString("  no SIP messages\n")
	}
	for _, m := range h.SIPMessages {
		what := m.Method
		if what == "" {
			what = strconv.Itoa(m.Status)
		}
		fmt.Fprintf(&b, "  sip  %+.2f ms  %-8s  %-9s  %-12s  %s  call %s\n",
			float64(m.Time.Sub(h.Started).Microseconds())/1000, clean(m.Dir), clean(what), clean(m.CSeq), clean(m.Remote), clean(m.CallID))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// PrintHandoffRecords writes handoffs with PrintHandoffRecord, a blank line
// between two.
func PrintHandoffRecords(w io.Writer, list []GatewayHandoff) error {
	if len(list) == 0 {
		_, err := io.WriteString(w, "no handoffs\n")
		return err
	}
	for i, h := range list {
		if i > 0 {
			if _, err := io.WriteString(w, "\n"); err != nil {
				return err
			}
		}
		if err := PrintHandoffRecord(w, h); err != nil {
			return err
		}
	}
	return nil
}

// DeviceEvent is one event on a gateway's GET /v1/events: a device's
// handoff, push or transfer event with the device it happened at.
type DeviceEvent struct {
	Device string `json:"device"`
	endpoint.Event
}
