package wire

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Type identifies a message. Values are part of the protocol: never reuse or
// renumber one. 1xx: access server <-> endpoint; 2xx: endpoint <-> endpoint.
type Type uint16

// Message types.
const (
	TypeUnknown Type = 0
	TypeError   Type = 1

	TypeLoginRequest  Type = 100
	TypeLoginResponse Type = 101
	TypeKeepalive     Type = 102
	TypeKeepaliveAck  Type = 103
	TypeSetStatus     Type = 104
	TypePresence      Type = 105
	TypeLogout        Type = 106
	TypeRenewRequest  Type = 107
	TypeRenewResponse Type = 108

	TypeInvite  Type = 200
	TypeRinging Type = 201
	TypeAccept  Type = 202
	TypeReject  Type = 203
	TypeCancel  Type = 204
	TypeBye     Type = 205
)

var typeNames = map[Type]string{
	TypeError:         "error",
	TypeLoginRequest:  "login-request",
	TypeLoginResponse: "login-response",
	TypeKeepalive:     "keepalive",
	TypeKeepaliveAck:  "keepalive-ack",
	TypeSetStatus:     "set-status",
	TypePresence:      "presence",
	TypeLogout:        "logout",
	TypeRenewRequest:  "renew-request",
	TypeRenewResponse: "renew-response",
	TypeInvite:        "invite",
	TypeRinging:       "ringing",
	TypeAccept:        "accept",
	TypeReject:        "reject",
	TypeCancel:        "cancel",
	TypeBye:           "bye",

	TypeSessionQuery:   "session-query",
	TypeSessionList:    "session-list",
	TypeStopAudio:      "stop-audio",
	TypeStopAck:        "stop-ack",
	TypeResume:         "resume",
	TypeResumeAck:      "resume-ack",
	TypeRelease:        "release",
	TypeReestablish:    "reestablish",
	TypeReestablishAck: "reestablish-ack",
	TypeNewAddress:     "new-address",
	TypeNewAddressAck:  "new-address-ack",
	TypeWithdraw:       "withdraw",

	TypePushOffer:  "push-offer",
	TypePushResult: "push-result",

	TypeDTMF:            "dtmf",
	TypeTransferRequest: "transfer-request",
	TypeTransferResult:  "transfer-result",
	TypeInviteReplaces:  "invite-replaces",
	TypeGatewayLogin:    "gateway-login",
	TypeGatewayWelcome:  "gateway-welcome",
	TypeDeviceLogin:     "device-login",
	TypeDeviceWelcome:   "device-welcome",
	TypeDeviceError:     "device-error",
	TypeDevicePresence:  "device-presence",
	TypeDeviceStatus:    "device-status",
	TypeDeviceLogout:    "device-logout",
	TypeDeviceRenew:     "device-renew",
	TypeDeviceRenewed:   "device-renewed",

	TypeMediaUpdate:    "media-update",
	TypeMediaUpdateAck: "media-update-ack",
}

func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("type(%d)", uint16(t))
}

// Message is one decoded protocol message.
type Message interface {
	// Type returns the frame type that carries this message.
	Type() Type
	// Validate checks the fields a receiver relies on. Decode calls it.
	Validate() error
}

// Limits on message fields. They bound what a peer can make us store.
const (
	MaxNameLen    = 64
	MaxReasonLen  = 256
	MaxPassword   = 1024
	MaxKeyLen     = 512  // PKIX public key, DER
	MaxCertLen    = 8192 // certificate, DER
	MaxCodecs     = 16
	MaxBuddies    = 4096
	MaxDevices    = 64
	SRTPKeyLen    = 30 // AES_CM_128 master key (16) + salt (14), RFC 3711 §8.2
	MaxCallIDLen  = 64
	maxAddressLen = 64
)

// ErrorCode is a machine-readable reason in Error and Reject messages.
type ErrorCode string

// Error and rejection codes.
const (
	CodeBadRequest       ErrorCode = "bad-request"
	CodeAuthFailed       ErrorCode = "auth-failed" // wrong password or unknown user: deliberately the same
	CodeForbidden        ErrorCode = "forbidden"
	CodeIdentityMismatch ErrorCode = "identity-mismatch"
	CodeNotFound         ErrorCode = "not-found"
	CodeOffline          ErrorCode = "offline"
	CodeBusy             ErrorCode = "busy"
	CodeDeclined         ErrorCode = "declined"
	CodeUnsupported      ErrorCode = "unsupported-codec"
	CodeTimeout          ErrorCode = "timeout"
	CodeInternal         ErrorCode = "internal"
	CodeUnknownCall      ErrorCode = "unknown-call"
	CodeDuplicate        ErrorCode = "duplicate"
	// CodeRateLimited refuses a login from a source address (or a user at
	// that address) with too many recent failures; Error.RetryAfterMS says
	// when the next attempt can be admitted.
	CodeRateLimited ErrorCode = "rate-limited"
	// CodeNotDelegated refuses a login a gateway made for a user that is
	// not delegated to its credential (issue 8 §1).
	CodeNotDelegated ErrorCode = "not-delegated"
)

// MaxRetryAfterMS bounds Error.RetryAfterMS: one day.
const MaxRetryAfterMS = 24 * 60 * 60 * 1000

// Status is an endpoint's presence status as carried on the wire.
type Status string

// Presence statuses.
const (
	StatusOffline Status = "offline"
	StatusOnline  Status = "online"
	StatusAway    Status = "away"
)

func (s Status) valid() bool {
	return s == StatusOffline || s == StatusOnline || s == StatusAway
}

// Error reports a failure to the peer.
type Error struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message,omitempty"`
	CallID  string    `json:"call_id,omitempty"`
	// RetryAfterMS, with CodeRateLimited, is how long the peer should wait
	// before trying again, in milliseconds (0 = unspecified).
	RetryAfterMS int64 `json:"retry_after_ms,omitempty"`
}

// LoginRequest is the first message an endpoint sends to the access server.
// The password travels only inside TLS to the access server; the public key
// is the endpoint's own, and its private half never leaves the endpoint.
type LoginRequest struct {
	User       string `json:"user"`
	Device     string `json:"device"`
	Password   string `json:"password"`
	PublicKey  []byte `json:"public_key"`  // PKIX, DER
	SignalAddr string `json:"signal_addr"` // where the endpoint accepts signaling
	Status     Status `json:"status,omitempty"`
	// Gateway, when set, names the gateway credential the login is made
	// with: Password is then the gateway's secret, and User must be
	// delegated to it. The certificate issued says the device is bridged.
	Gateway string `json:"gateway,omitempty"`
}

// LoginResponse answers a successful login with the credential and profile.
type LoginResponse struct {
	Certificate  []byte  `json:"certificate"` // X.509, DER, issued by the access CA
	ExpiresUnix  int64   `json:"expires_unix"`
	ObservedAddr string  `json:"observed_addr"` // the endpoint's address as the server saw it
	KeepaliveMS  int64   `json:"keepalive_ms"`
	Profile      Profile `json:"profile"`
}

// Profile is what an endpoint needs to reach its buddies and its own devices.
type Profile struct {
	User    string   `json:"user"`
	Devices []Device `json:"devices"` // the user's other devices, any status
	Buddies []Buddy  `json:"buddies"`
}

// Buddy is one buddy with the presence of each of its devices.
type Buddy struct {
	User    string   `json:"user"`
	Devices []Device `json:"devices,omitempty"`
}

// Device is one device's presence. SignalAddr is set only when online or away.
type Device struct {
	User       string `json:"user"`
	Device     string `json:"device"`
	Status     Status `json:"status"`
	SignalAddr string `json:"signal_addr,omitempty"`
	SinceUnix  int64  `json:"since_unix,omitempty"`
}

// Keepalive tells the access server the endpoint is alive.
type Keepalive struct{}

// KeepaliveAck answers a Keepalive.
type KeepaliveAck struct{}

// SetStatus changes the endpoint's presence status.
type SetStatus struct {
	Status Status `json:"status"`
}

// Presence is pushed by the access server when a buddy's or own device's
// presence changes.
type Presence struct {
	Device Device `json:"device"`
}

// Logout ends the session; the endpoint is offline at once.
type Logout struct{}

// RenewRequest asks for a fresh certificate for the same key.
type RenewRequest struct{}

// RenewResponse carries the renewed certificate.
type RenewResponse struct {
	Certificate []byte `json:"certificate"`
	ExpiresUnix int64  `json:"expires_unix"`
}

// Media describes one side's RTP endpoint for a call.
type Media struct {
	Addr    string `json:"addr"` // IP:port receiving RTP
	SSRC    uint32 `json:"ssrc"`
	SRTPKey []byte `json:"srtp_key,omitempty"` // sender's master key+salt; absent = plain RTP
	PtimeMS int    `json:"ptime_ms"`
}

// Invite starts a call. From and To are "user/device" identities; the
// receiver checks From against the TLS peer certificate.
type Invite struct {
	CallID string   `json:"call_id"`
	From   string   `json:"from"`
	To     string   `json:"to"`
	Codecs []string `json:"codecs"` // preference order, RFC 3264 style
	Media  Media    `json:"media"`
	// SignalAddr is where the caller accepts signaling, so that a device
	// taking the call over later can reach it (optional).
	SignalAddr string `json:"signal_addr,omitempty"`
	// Number is the telephone number a gateway's trunk device dials onward
	// (E.164 or digits, * and #; optional, at most MaxNumberLen).
	Number string `json:"number,omitempty"`
}

// MaxNumberLen bounds Invite.Number.
const MaxNumberLen = 32

// ValidNumber reports whether s is a dialable number: digits, * and #,
// with an optional leading +, 1 to MaxNumberLen characters.
func ValidNumber(s string) bool {
	d := strings.TrimPrefix(s, "+")
	if d == "" || len(s) > MaxNumberLen {
		return false
	}
	return strings.Trim(d, "0123456789*#") == ""
}

// Ringing tells the caller the callee is alerting.
type Ringing struct {
	CallID string `json:"call_id"`
}

// Accept answers an Invite with the chosen codec and the callee's media.
type Accept struct {
	CallID string `json:"call_id"`
	Codec  string `json:"codec"`
	Media  Media  `json:"media"`
	// SignalAddr is where the callee accepts signaling (optional).
	SignalAddr string `json:"signal_addr,omitempty"`
}

// Reject refuses an Invite (busy, declined, unsupported codec...).
type Reject struct {
	CallID string    `json:"call_id"`
	Code   ErrorCode `json:"code"`
	Reason string    `json:"reason,omitempty"`
}

// Cancel withdraws an Invite before it is answered.
type Cancel struct {
	CallID string `json:"call_id"`
}

// Bye ends an established call.
type Bye struct {
	CallID string `json:"call_id"`
	Reason string `json:"reason,omitempty"`
}

func (*Error) Type() Type         { return TypeError }
func (*LoginRequest) Type() Type  { return TypeLoginRequest }
func (*LoginResponse) Type() Type { return TypeLoginResponse }
func (*Keepalive) Type() Type     { return TypeKeepalive }
func (*KeepaliveAck) Type() Type  { return TypeKeepaliveAck }
func (*SetStatus) Type() Type     { return TypeSetStatus }
func (*Presence) Type() Type      { return TypePresence }
func (*Logout) Type() Type        { return TypeLogout }
func (*RenewRequest) Type() Type  { return TypeRenewRequest }
func (*RenewResponse) Type() Type { return TypeRenewResponse }
func (*Invite) Type() Type        { return TypeInvite }
func (*Ringing) Type() Type       { return TypeRinging }
func (*Accept) Type() Type        { return TypeAccept }
func (*Reject) Type() Type        { return TypeReject }
func (*Cancel) Type() Type        { return TypeCancel }
func (*Bye) Type() Type           { return TypeBye }

// New returns an empty message of type t, or nil when t is unknown.
func New(t Type) Message {
	switch t {
	case TypeError:
		return &Error{}
	case TypeLoginRequest:
		return &LoginRequest{}
	case TypeLoginResponse:
		return &LoginResponse{}
	case TypeKeepalive:
		return &Keepalive{}
	case TypeKeepaliveAck:
		return &KeepaliveAck{}
	case TypeSetStatus:
		return &SetStatus{}
	case TypePresence:
		return &Presence{}
	case TypeLogout:
		return &Logout{}
	case TypeRenewRequest:
		return &RenewRequest{}
	case TypeRenewResponse:
		return &RenewResponse{}
	case TypeInvite:
		return &Invite{}
	case TypeRinging:
		return &Ringing{}
	case TypeAccept:
		return &Accept{}
	case TypeReject:
		return &Reject{}
	case TypeCancel:
		return &Cancel{}
	case TypeBye:
		return &Bye{}
	}
	if m := newHandoff(t); m != nil {
		return m
	}
	if m := newDTMF(t); m != nil {
		return m
	}
	if m := newTransfer(t); m != nil {
		return m
	}
	if m := newGatewayMux(t); m != nil {
		return m
	}
	if m := newMediaUpdate(t); m != nil {
		return m
	}
	return newPush(t)
}

// Encode marshals m into a frame payload.
func Encode(m Message) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("wire: encode %s: %w", m.Type(), err)
	}
	return b, nil
}

// Decode decodes and validates a frame's payload. Unknown JSON fields are
// ignored so that a later minor revision can add optional fields; anything
// a receiver relies on is checked by Validate.
func Decode(f Frame) (Message, error) {
	m := New(f.Type)
	if m == nil {
		return nil, fmt.Errorf("%w: %d", ErrUnknownType, uint16(f.Type))
	}
	if !utf8.Valid(f.Payload) {
		return nil, fmt.Errorf("%w: %s: payload is not UTF-8", ErrMalformed, f.Type)
	}
	if err := json.Unmarshal(f.Payload, m); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, f.Type, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

func malformed(t Type, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformed, t, fmt.Sprintf(format, args...))
}

// ValidName reports whether s is a valid user or device name:
// 1-64 characters of [a-z0-9._-], starting with a letter or digit.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// ValidIdentity reports whether s is "user/device" with valid names.
func ValidIdentity(s string) bool {
	u, d, ok := strings.Cut(s, "/")
	return ok && ValidName(u) && ValidName(d)
}

func checkAddr(t Type, field, s string, optional bool) error {
	if s == "" && optional {
		return nil
	}
	if !utf8.ValidString(s) {
		return malformed(t, "%s is not UTF-8", field)
	}
	if len(s) > maxAddressLen {
		return malformed(t, "%s too long", field)
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return malformed(t, "%s %q: %v", field, s, err)
	}
	if ap.Port() == 0 {
		return malformed(t, "%s %q: port 0", field, s)
	}
	return nil
}

func checkCallID(t Type, id string) error {
	if id == "" || len(id) > MaxCallIDLen {
		return malformed(t, "call_id must be 1-%d bytes", MaxCallIDLen)
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return malformed(t, "call_id has a non-printable byte")
		}
	}
	return nil
}

func checkDevice(t Type, d Device) error {
	if !ValidName(d.User) || !ValidName(d.Device) {
		return malformed(t, "device %q/%q: invalid name", d.User, d.Device)
	}
	if !d.Status.valid() {
		return malformed(t, "device %s/%s: invalid status %q", d.User, d.Device, d.Status)
	}
	return checkAddr(t, "signal_addr", d.SignalAddr, true)
}

func checkMedia(t Type, m Media) error {
	if err := checkAddr(t, "media.addr", m.Addr, false); err != nil {
		return err
	}
	if m.SRTPKey != nil && len(m.SRTPKey) != SRTPKeyLen {
		return malformed(t, "media.srtp_key is %d bytes, want %d", len(m.SRTPKey), SRTPKeyLen)
	}
	if m.PtimeMS < 10 || m.PtimeMS > 60 || m.PtimeMS%10 != 0 {
		return malformed(t, "media.ptime_ms %d: want 10..60 in steps of 10", m.PtimeMS)
	}
	return nil
}

// checkText rejects strings that are not valid UTF-8: encoding/json would
// replace their bad bytes, so they would arrive changed (and longer).
func checkText(t Type, field, s string) error {
	if !utf8.ValidString(s) {
		return malformed(t, "%s is not UTF-8", field)
	}
	return nil
}

func checkReason(t Type, s string) error {
	if err := checkText(t, "reason", s); err != nil {
		return err
	}
	if len(s) > MaxReasonLen {
		return malformed(t, "reason longer than %d bytes", MaxReasonLen)
	}
	return nil
}

// Validate implements Message.
func (m *Error) Validate() error {
	if m.Code == "" || len(m.Code) > MaxNameLen {
		return malformed(m.Type(), "missing or oversized code")
	}
	if err := checkText(m.Type(), "code", string(m.Code)); err != nil {
		return err
	}
	if m.CallID != "" {
		if err := checkCallID(m.Type(), m.CallID); err != nil {
			return err
		}
	}
	if m.RetryAfterMS < 0 || m.RetryAfterMS > MaxRetryAfterMS {
		return malformed(m.Type(), "retry_after_ms %d: want 0-%d", m.RetryAfterMS, MaxRetryAfterMS)
	}
	return checkReason(m.Type(), m.Message)
}

// Validate implements Message.
func (m *LoginRequest) Validate() error {
	t := m.Type()
	if !ValidName(m.User) {
		return malformed(t, "user %q: want 1-64 of [a-z0-9._-]", m.User)
	}
	if !ValidName(m.Device) {
		return malformed(t, "device %q: want 1-64 of [a-z0-9._-]", m.Device)
	}
	if m.Password == "" || len(m.Password) > MaxPassword {
		return malformed(t, "password must be 1-%d bytes", MaxPassword)
	}
	if err := checkText(t, "password", m.Password); err != nil {
		return err
	}
	if len(m.PublicKey) == 0 || len(m.PublicKey) > MaxKeyLen {
		return malformed(t, "public_key must be 1-%d bytes", MaxKeyLen)
	}
	if m.Gateway != "" && !ValidName(m.Gateway) {
		return malformed(t, "gateway %q: want 1-64 of [a-z0-9._-]", m.Gateway)
	}
	if m.Status != "" && (!m.Status.valid() || m.Status == StatusOffline) {
		return malformed(t, "status %q: want online or away", m.Status)
	}
	return checkAddr(t, "signal_addr", m.SignalAddr, false)
}

// Validate implements Message.
func (m *LoginResponse) Validate() error {
	t := m.Type()
	if len(m.Certificate) == 0 || len(m.Certificate) > MaxCertLen {
		return malformed(t, "certificate must be 1-%d bytes", MaxCertLen)
	}
	if m.ExpiresUnix <= 0 {
		return malformed(t, "expires_unix missing")
	}
	if m.KeepaliveMS <= 0 {
		return malformed(t, "keepalive_ms must be positive")
	}
	if err := checkAddr(t, "observed_addr", m.ObservedAddr, false); err != nil {
		return err
	}
	return m.Profile.validate(t)
}

func (p *Profile) validate(t Type) error {
	if !ValidName(p.User) {
		return malformed(t, "profile user %q invalid", p.User)
	}
	if len(p.Devices) > MaxDevices {
		return malformed(t, "profile has %d devices, limit %d", len(p.Devices), MaxDevices)
	}
	for _, d := range p.Devices {
		if err := checkDevice(t, d); err != nil {
			return err
		}
	}
	if len(p.Buddies) > MaxBuddies {
		return malformed(t, "profile has %d buddies, limit %d", len(p.Buddies), MaxBuddies)
	}
	for _, b := range p.Buddies {
		if !ValidName(b.User) {
			return malformed(t, "buddy %q invalid", b.User)
		}
		if len(b.Devices) > MaxDevices {
			return malformed(t, "buddy %s has %d devices, limit %d", b.User, len(b.Devices), MaxDevices)
		}
		for _, d := range b.Devices {
			if err := checkDevice(t, d); err != nil {
				return err
			}
		}
	}
	return nil
}

// Validate implements Message.
func (*Keepalive) Validate() error { return nil }

// Validate implements Message.
func (*KeepaliveAck) Validate() error { return nil }

// Validate implements Message.
func (m *SetStatus) Validate() error {
	if m.Status != StatusOnline && m.Status != StatusAway {
		return malformed(m.Type(), "status %q: want online or away", m.Status)
	}
	return nil
}

// Validate implements Message.
func (m *Presence) Validate() error { return checkDevice(m.Type(), m.Device) }

// Validate implements Message.
func (*Logout) Validate() error { return nil }

// Validate implements Message.
func (*RenewRequest) Validate() error { return nil }

// Validate implements Message.
func (m *RenewResponse) Validate() error {
	if len(m.Certificate) == 0 || len(m.Certificate) > MaxCertLen {
		return malformed(m.Type(), "certificate must be 1-%d bytes", MaxCertLen)
	}
	if m.ExpiresUnix <= 0 {
		return malformed(m.Type(), "expires_unix missing")
	}
	return nil
}

// Validate implements Message.
func (m *Invite) Validate() error {
	t := m.Type()
	if err := checkCallID(t, m.CallID); err != nil {
		return err
	}
	if !ValidIdentity(m.From) {
		return malformed(t, "from %q: want user/device", m.From)
	}
	if !ValidIdentity(m.To) {
		return malformed(t, "to %q: want user/device", m.To)
	}
	if len(m.Codecs) == 0 || len(m.Codecs) > MaxCodecs {
		return malformed(t, "codecs: want 1-%d names", MaxCodecs)
	}
	for _, c := range m.Codecs {
		if c == "" || len(c) > MaxNameLen || !utf8.ValidString(c) {
			return malformed(t, "codec name %q invalid", c)
		}
	}
	if err := checkAddr(t, "signal_addr", m.SignalAddr, true); err != nil {
		return err
	}
	if m.Number != "" && !ValidNumber(m.Number) {
		return malformed(t, "number %q: want digits, * and # with an optional leading +, at most %d", m.Number, MaxNumberLen)
	}
	return checkMedia(t, m.Media)
}

// Validate implements Message.
func (m *Ringing) Validate() error { return checkCallID(m.Type(), m.CallID) }

// Validate implements Message.
func (m *Accept) Validate() error {
	t := m.Type()
	if err := checkCallID(t, m.CallID); err != nil {
		return err
	}
	if m.Codec == "" || len(m.Codec) > MaxNameLen || !utf8.ValidString(m.Codec) {
		return malformed(t, "codec %q invalid", m.Codec)
	}
	if err := checkAddr(t, "signal_addr", m.SignalAddr, true); err != nil {
		return err
	}
	return checkMedia(t, m.Media)
}

// Validate implements Message.
func (m *Reject) Validate() error {
	t := m.Type()
	if err := checkCallID(t, m.CallID); err != nil {
		return err
	}
	if m.Code == "" || len(m.Code) > MaxNameLen {
		return malformed(t, "missing or oversized code")
	}
	if err := checkText(t, "code", string(m.Code)); err != nil {
		return err
	}
	return checkReason(t, m.Reason)
}

// Validate implements Message.
func (m *Cancel) Validate() error { return checkCallID(m.Type(), m.CallID) }

// Validate implements Message.
func (m *Bye) Validate() error {
	if err := checkCallID(m.Type(), m.CallID); err != nil {
		return err
	}
	return checkReason(m.Type(), m.Reason)
}
