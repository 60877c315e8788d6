package wire

// Gateway session messages (110-119, issue 8 §1, issue 11 §3): one TLS
// connection from a gateway to the access server carries the logins and
// presence of every device the gateway bridges, instead of one connection
// (and ~13 KiB at the server) per device. The gateway authenticates once
// with its credential (gateway-login); each device then logs in with
// device-login on that connection. Every message after the gateway's
// welcome names the device it is about ("user/device"); keepalive,
// keepalive-ack, logout and error keep their meaning for the connection as
// a whole.
const (
	TypeGatewayLogin   Type = 110 // gateway -> server, first message: name and secret
	TypeGatewayWelcome Type = 111 // server -> gateway: logged in
	TypeDeviceLogin    Type = 112 // gateway -> server: log one device in
	TypeDeviceWelcome  Type = 113 // server -> gateway: the device's credential and profile
	TypeDeviceError    Type = 114 // server -> gateway: a device's login refused, or its session ended
	TypeDevicePresence Type = 115 // server -> gateway: a presence push for one device
	TypeDeviceStatus   Type = 116 // gateway -> server: a device's status changed
	TypeDeviceLogout   Type = 117 // gateway -> server: a device goes offline
	TypeDeviceRenew    Type = 118 // gateway -> server: renew a device's certificate
	TypeDeviceRenewed  Type = 119 // server -> gateway: the renewed certificate
)

// MaxGatewayUsers bounds the delegated users a gateway-welcome lists (so
// the welcome stays well under DefaultMaxPayload); UsersTotal says how many
// there are in all.
const MaxGatewayUsers = 4096

// GatewayLogin is the first message of a gateway's session: the gateway
// credential (`baton gateway add NAME --users ...`). The secret travels
// only inside TLS to the access server.
type GatewayLogin struct {
	Gateway string `json:"gateway"`
	Secret  string `json:"secret"`
}

// GatewayWelcome answers a good gateway-login.
type GatewayWelcome struct {
	ObservedAddr string   `json:"observed_addr"` // the gateway's address as the server saw it
	KeepaliveMS  int64    `json:"keepalive_ms"`
	Users        []string `json:"users"` // delegated to the gateway at this moment (the first MaxGatewayUsers)
	UsersTotal   int      `json:"users_total,omitempty"`
}

// DeviceLogin logs one bridged device in through the gateway's session; it
// is a login-request without the password (the session is authenticated).
type DeviceLogin struct {
	ID         string `json:"id"`          // user/device
	PublicKey  []byte `json:"public_key"`  // PKIX, DER: the device's own key
	SignalAddr string `json:"signal_addr"` // where the device accepts signaling
	Status     Status `json:"status,omitempty"`
}

// DeviceWelcome answers a device-login: a login-response for ID.
type DeviceWelcome struct {
	ID          string  `json:"id"`
	Certificate []byte  `json:"certificate"`
	ExpiresUnix int64   `json:"expires_unix"`
	Profile     Profile `json:"profile"`
}

// DeviceError refuses a device-login (CodeNotDelegated, CodeBadRequest...)
// or ends a device's session (CodeForbidden: its user was deleted); the
// device is offline after it. The gateway session goes on.
type DeviceError struct {
	ID      string    `json:"id"`
	Code    ErrorCode `json:"code"`
	Message string    `json:"message,omitempty"`
}

// DevicePresence is a presence push for device ID.
type DevicePresence struct {
	ID     string `json:"id"`
	Device Device `json:"device"`
}

// DeviceStatus changes device ID's status (online or away).
type DeviceStatus struct {
	ID     string `json:"id"`
	Status Status `json:"status"`
}

// DeviceLogout ends device ID's session: it is offline at once.
type DeviceLogout struct {
	ID string `json:"id"`
}

// DeviceRenew asks for a fresh certificate for device ID, same key.
type DeviceRenew struct {
	ID string `json:"id"`
}

// DeviceRenewed carries device ID's renewed certificate.
type DeviceRenewed struct {
	ID          string `json:"id"`
	Certificate []byte `json:"certificate"`
	ExpiresUnix int64  `json:"expires_unix"`
}

func (*GatewayLogin) Type() Type   { return TypeGatewayLogin }
func (*GatewayWelcome) Type() Type { return TypeGatewayWelcome }
func (*DeviceLogin) Type() Type    { return TypeDeviceLogin }
func (*DeviceWelcome) Type() Type  { return TypeDeviceWelcome }
func (*DeviceError) Type() Type    { return TypeDeviceError }
func (*DevicePresence) Type() Type { return TypeDevicePresence }
func (*DeviceStatus) Type() Type   { return TypeDeviceStatus }
func (*DeviceLogout) Type() Type   { return TypeDeviceLogout }
func (*DeviceRenew) Type() Type    { return TypeDeviceRenew }
func (*DeviceRenewed) Type() Type  { return TypeDeviceRenewed }

// newGatewayMux returns an empty gateway session message of type t, or nil.
func newGatewayMux(t Type) Message {
	switch t {
	case TypeGatewayLogin:
		return &GatewayLogin{}
	case TypeGatewayWelcome:
		return &GatewayWelcome{}
	case TypeDeviceLogin:
		return &DeviceLogin{}
	case TypeDeviceWelcome:
		return &DeviceWelcome{}
	case TypeDeviceError:
		return &DeviceError{}
	case TypeDevicePresence:
		return &DevicePresence{}
	case TypeDeviceStatus:
		return &DeviceStatus{}
	case TypeDeviceLogout:
		return &DeviceLogout{}
	case TypeDeviceRenew:
		return &DeviceRenew{}
	case TypeDeviceRenewed:
		return &DeviceRenewed{}
	}
	return nil
}

func checkID(t Type, id string) error {
	if !ValidIdentity(id) {
		return malformed(t, "id %q: want user/device", id)
	}
	return nil
}

func checkCert(t Type, cert []byte, expires int64) error {
	if len(cert) == 0 || len(cert) > MaxCertLen {
		return malformed(t, "certificate must be 1-%d bytes", MaxCertLen)
	}
	if expires <= 0 {
		return malformed(t, "expires_unix missing")
	}
	return nil
}

// Validate implements Message.
func (m *GatewayLogin) Validate() error {
	t := m.Type()
	if !ValidName(m.Gateway) {
		return malformed(t, "gateway %q: want 1-64 of [a-z0-9._-]", m.Gateway)
	}
	if m.Secret == "" || len(m.Secret) > MaxPassword {
		return malformed(t, "secret must be 1-%d bytes", MaxPassword)
	}
	return checkText(t, "secret", m.Secret)
}

// Validate implements Message.
func (m *GatewayWelcome) Validate() error {
	t := m.Type()
	if m.KeepaliveMS <= 0 {
		return malformed(t, "keepalive_ms must be positive")
	}
	if err := checkAddr(t, "observed_addr", m.ObservedAddr, false); err != nil {
		return err
	}
	if len(m.Users) > MaxGatewayUsers {
		return malformed(t, "%d users, limit %d", len(m.Users), MaxGatewayUsers)
	}
	if m.UsersTotal < 0 || (m.UsersTotal != 0 && m.UsersTotal < len(m.Users)) {
		return malformed(t, "users_total %d with %d users listed", m.UsersTotal, len(m.Users))
	}
	for _, u := range m.Users {
		if !ValidName(u) {
			return malformed(t, "user %q invalid", u)
		}
	}
	return nil
}

// Validate implements Message.
func (m *DeviceLogin) Validate() error {
	t := m.Type()
	if err := checkID(t, m.ID); err != nil {
		return err
	}
	if len(m.PublicKey) == 0 || len(m.PublicKey) > MaxKeyLen {
		return malformed(t, "public_key must be 1-%d bytes", MaxKeyLen)
	}
	if m.Status != "" && (!m.Status.valid() || m.Status == StatusOffline) {
		return malformed(t, "status %q: want online or away", m.Status)
	}
	return checkAddr(t, "signal_addr", m.SignalAddr, false)
}

// Validate implements Message.
func (m *DeviceWelcome) Validate() error {
	t := m.Type()
	if err := checkID(t, m.ID); err != nil {
		return err
	}
	if err := checkCert(t, m.Certificate, m.ExpiresUnix); err != nil {
		return err
	}
	return m.Profile.validate(t)
}

// Validate implements Message.
func (m *DeviceError) Validate() error {
	t := m.Type()
	if err := checkID(t, m.ID); err != nil {
		return err
	}
	if m.Code == "" || len(m.Code) > MaxNameLen {
		return malformed(t, "missing or oversized code")
	}
	if err := checkText(t, "code", string(m.Code)); err != nil {
		return err
	}
	return checkReason(t, m.Message)
}

// Validate implements Message.
func (m *DevicePresence) Validate() error {
	if err := checkID(m.Type(), m.ID); err != nil {
		return err
	}
	return checkDevice(m.Type(), m.Device)
}

// Validate implements Message.
func (m *DeviceStatus) Validate() error {
	if err := checkID(m.Type(), m.ID); err != nil {
		return err
	}
	if m.Status != StatusOnline && m.Status != StatusAway {
		return malformed(m.Type(), "status %q: want online or away", m.Status)
	}
	return nil
}

// Validate implements Message.
func (m *DeviceLogout) Validate() error { return checkID(m.Type(), m.ID) }

// Validate implements Message.
func (m *DeviceRenew) Validate() error { return checkID(m.Type(), m.ID) }

// Validate implements Message.
func (m *DeviceRenewed) Validate() error {
	if err := checkID(m.Type(), m.ID); err != nil {
		return err
	}
	return checkCert(m.Type(), m.Certificate, m.ExpiresUnix)
}
