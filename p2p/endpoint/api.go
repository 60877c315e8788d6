package endpoint

import (
	"context"
	"net/netip"
	"time"
)

// CallState is the state of one call as seen by this endpoint.
type CallState int

// Call states.
const (
	CallUnknown CallState = iota
	// CallDialing: Invite sent, nothing heard yet.
	CallDialing
	// CallRinging: outgoing call alerting at the callee, or incoming call
	// alerting here.
	CallRinging
	// CallActive: answered, media flowing.
	CallActive
	// CallEnded: over (hung up, rejected, cancelled, failed).
	CallEnded
)

func (s CallState) String() string {
	switch s {
	case CallDialing:
		return "dialing"
	case CallRinging:
		return "ringing"
	case CallActive:
		return "active"
	case CallEnded:
		return "ended"
	}
	return "unknown"
}

// MediaInfo is the JSON view of a call's media counters.
type MediaInfo struct {
	PacketsSent     uint64  `json:"packets_sent"`
	PacketsReceived uint64  `json:"packets_received"`
	Lost            uint64  `json:"lost"`
	Late            uint64  `json:"late"`
	Concealed       uint64  `json:"frames_concealed"`
	Played          uint64  `json:"frames_played"`
	WrongSource     uint64  `json:"wrong_source"`
	Malformed       uint64  `json:"malformed"`
	AuthFailed      uint64  `json:"auth_failed"`
	JitterMS        float64 `json:"jitter_ms"`
	// LongestGapMS is the longest run of concealed frames between two
	// played frames: the longest silence a listener heard mid-call.
	LongestGapMS   float64 `json:"longest_gap_ms"`
	SourceSwitches uint64  `json:"source_switches"`
	Latched        uint64  `json:"latched"`
	// RemoteConfirmed says the far party's media address has consent (on
	// its signaling IP, or it proved it receives, recently); until then it
	// gets consent probes only (ConsentProbes), and NotSentNoConsent
	// counts the frames held back. ConsentLapses counts times consent
	// expired for want of authenticated packets from it.
	RemoteConfirmed  bool   `json:"remote_confirmed"`
	ConsentProbes    uint64 `json:"consent_probes"`
	NotSentNoConsent uint64 `json:"not_sent_no_consent"`
	ConsentLapses    uint64 `json:"consent_lapses"`
}

// CallInfo is a snapshot of one call.
type CallInfo struct {
	ID        string `json:"id"`
	Direction string `json:"direction"` // "outgoing" or "incoming"
	Peer      string `json:"peer"`      // user/device
	// PeerGateway names the gateway that bridges the peer, a SIP device
	// (its certificate says so: pki.BridgedBy); "" for a P2P peer. It is
	// the peer the call was set up with.
	PeerGateway string     `json:"peer_gateway,omitempty"`
	State       string     `json:"state"`
	Codec       string     `json:"codec,omitempty"`
	SRTP        bool       `json:"srtp"`
	LocalMedia  string     `json:"local_media,omitempty"`
	RemoteMedia string     `json:"remote_media,omitempty"`
	Started     time.Time  `json:"started"`
	Answered    *time.Time `json:"answered,omitempty"`
	Ended       *time.Time `json:"ended,omitempty"`
	EndReason   string     `json:"end_reason,omitempty"`
	// Result is how the call ended, for machines: "completed",
	// "cancelled", "declined", "failed", or the wire.ErrorCode the peer
	// refused it with ("busy", "offline", "not-found"...).
	Result string     `json:"result,omitempty"`
	Media  *MediaInfo `json:"media,omitempty"`
	// Number is the telephone number the call asks a gateway's trunk
	// device to dial onward, when it does.
	Number string `json:"number,omitempty"`
	// MediaDirection is the call's audio direction from this party's
	// view once a media update has set it (hold.go): sendrecv, sendonly
	// (this party holds), recvonly (the peer holds), inactive (both).
	MediaDirection string `json:"media_direction,omitempty"`
	// HeldBy says who holds the call: "local", "remote", "both", or ""
	// when nobody does.
	HeldBy string `json:"held_by,omitempty"`
	// CodecChange is the call's last codec switch by media update
	// (hold.go): `ctl codec`, or the fallback when a codec plugin died.
	CodecChange *CodecChange `json:"codec_change,omitempty"`
}

// CodecChange describes a codec switch in a call.
type CodecChange struct {
	From   string    `json:"from"`
	To     string    `json:"to"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"` // "codec-change", "codec-fallback"...
	// ReceiveGapMS is how long no audio came from the peer around the
	// switch: from its last packet in the old codec to its first in the
	// new one (absent until that arrives).
	ReceiveGapMS float64 `json:"receive_gap_ms,omitempty"`

	lastOld time.Time // the peer's last packet in the old codec
}

// DeviceInfo is one device's presence.
type DeviceInfo struct {
	Device     string `json:"device"`
	Status     string `json:"status"`
	SignalAddr string `json:"signal_addr,omitempty"`
}

// BuddyInfo is a buddy (or the user's own other devices, with Self set).
type BuddyInfo struct {
	User    string       `json:"user"`
	Self    bool         `json:"self,omitempty"`
	Status  string       `json:"status"` // best status over its devices
	Devices []DeviceInfo `json:"devices"`
}

// StatusInfo describes the endpoint.
type StatusInfo struct {
	Identity     string    `json:"identity"`
	LoggedIn     bool      `json:"logged_in"`
	Access       string    `json:"access"`
	SignalAddr   string    `json:"signal_addr"`
	MediaIP      string    `json:"media_ip"`
	ObservedAddr string    `json:"observed_addr,omitempty"`
	CertExpires  time.Time `json:"cert_expires"`
	ActiveCalls  int       `json:"active_calls"`
}

// Event is one entry of the endpoint's event stream (/v1/events): login,
// presence and call state changes, with a timestamp.
type Event struct {
	Time time.Time `json:"time"`
	Type string    `json:"type"` // e.g. "login", "presence", "call.ringing"
	// Kind is Type, typed (events.go); the JSON stream carries Type.
	Kind   EventKind `json:"-"`
	CallID string    `json:"call_id,omitempty"`
	Peer   string    `json:"peer,omitempty"`
	State  string    `json:"state,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Step   int       `json:"step,omitempty"` // handoff step (1-12), when it is one
	// Digit and DurationMS describe a call.dtmf event: one digit the far
	// party pressed (0-9 * # A-D) and its tone length.
	Digit      string `json:"digit,omitempty"`
	DurationMS int    `json:"duration_ms,omitempty"`
}

// API is what the control API serves. *Endpoint implements it.
type API interface {
	Status() StatusInfo
	Buddies() []BuddyInfo
	Calls() []CallInfo
	Call(id string) (CallInfo, error)
	Dial(ctx context.Context, target string) (CallInfo, error)
	// DialWith is Dial with per-call options (a number for a trunk).
	DialWith(ctx context.Context, target string, opts CallOptions) (CallInfo, error)
	Answer(ctx context.Context, id string) error
	Hangup(ctx context.Context, id string) error
	// SendDTMF sends digits to the far party of an active call
	// (docs/protocol.md §14); bad digits are ErrInvalidDTMF.
	SendDTMF(ctx context.Context, id string, req DTMFRequest) error
	// Subscribe returns a channel of events from now on and a cancel func
	// that must be called; a subscriber that does not keep up loses its
	// subscription (the channel is closed) rather than blocking the endpoint.
	Subscribe() (<-chan Event, func())

	// Pull takes a live call from another device of this user (the twelve
	// steps of docs/handoff.md). It returns when the handoff is over; the
	// HandoffInfo (with an ID) records what happened even when it failed
	// or rolled back. An info without ID means no attempt was made.
	Pull(ctx context.Context, req PullRequest) (HandoffInfo, error)
	// Push sends an active call to another device of this user, which
	// takes it with a pull (docs/handoff.md); the HandoffInfo (kind
	// "push") carries the target's steps.
	Push(ctx context.Context, req PushRequest) (HandoffInfo, error)
	// Transfer asks the far party of an active call to call target and
	// take this device's place (a blind transfer); the call here ends
	// once target answers, and stays when the transfer fails.
	Transfer(ctx context.Context, callID, target string) (TransferInfo, error)
	// TransferAttended joins the far parties of two active calls of this
	// device (an attended transfer, RFC 5589 §7): the far party of callID
	// calls the far party of callID2, replacing callID2; both calls here
	// end once that call is active, and both stay when it fails.
	TransferAttended(ctx context.Context, callID, callID2 string) (TransferInfo, error)
	// Sessions asks another device of this user which sessions it has.
	Sessions(ctx context.Context, device string) ([]SessionInfo, error)
	// Rebind moves this endpoint's media to a new local IP (mobility).
	Rebind(ctx context.Context, ip netip.Addr) (HandoffInfo, error)
	// Handoffs lists recent handoffs and rebinds; Handoff returns one.
	Handoffs() []HandoffInfo
	Handoff(id string) (HandoffInfo, error)
}
