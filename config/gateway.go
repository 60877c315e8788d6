package config

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Gateway configures `baton gateway`, the SIP bridge: a registrar and
// B2BUA that makes each SIP account a P2P device (docs/sip.md).
type Gateway struct {
	Log Log `koanf:"log"`
	// Access is the access server's address; CA its CA certificate.
	Access string `koanf:"access"`
	CA     string `koanf:"ca"`
	// Credential is the gateway's own credential at the access server;
	// when set, every bridged device logs in with it and the accounts'
	// password files are not needed (docs/sip.md, "Gateway credential").
	Credential GatewayCredential `koanf:"credential"`
	SIP        SIP               `koanf:"sip"`
	Media      GatewayMedia      `koanf:"media"`
	// Signal caps the P2P signaling connections to the gateway's devices
	// that have not authenticated yet (one listener for all of them).
	Signal GatewaySignal `koanf:"signal"`
	// Codecs are the codecs offered and accepted on both sides, in order
	// of preference.
	Codecs []string `koanf:"codecs"`
	// Accounts are the bridged SIP user agents.
	Accounts []SIPAccount `koanf:"accounts"`
	// Trunks are SIP providers whose calls come in to P2P users.
	Trunks []SIPTrunk `koanf:"trunks"`
	// DialPlan sends numbers registered phones dial out through a trunk;
	// the first matching rule wins.
	DialPlan []DialRule `koanf:"dialplan"`
	// Admin is the HTTP control API address; "" turns it off.
	Admin string `koanf:"admin"`
	// Plugins loads a transfer policy plugin for the bridged devices.
	Plugins Plugins `koanf:"plugins"`
}

// GatewayCredential names the credential `baton gateway add NAME --users
// ...` issued at the access server, and the file holding its secret.
type GatewayCredential struct {
	// Gateway is the credential's name ("" = none: each device logs in
	// with its own password_file).
	Gateway string `koanf:"gateway"`
	// SecretFile holds the secret `baton gateway add` wrote.
	SecretFile string `koanf:"secret_file"`
}

// SIP configures the gateway's SIP side.
type SIP struct {
	// UDP and TCP are the listen addresses; "" turns one off.
	UDP string `koanf:"udp"`
	TCP string `koanf:"tcp"`
	// Advertise is the host put in Contact headers and SDP when the
	// gateway is reached through NAT; "" means the listen address.
	Advertise string `koanf:"advertise"`
	// Realm is the digest realm; account HA1 values are computed with it.
	Realm string `koanf:"realm"`
	// NonceTTL is how long a digest nonce is good for.
	NonceTTL time.Duration `koanf:"nonce_ttl"`
	// MinExpires and MaxExpires bound registrations.
	MinExpires time.Duration `koanf:"min_expires"`
	MaxExpires time.Duration `koanf:"max_expires"`
	// FailBurst failed authentications per source address are allowed,
	// then one more per FailEvery.
	FailBurst int           `koanf:"fail_burst"`
	FailEvery time.Duration `koanf:"fail_every"`
	// PickupCode is what a phone dials to take its user's active call
	// from another of the user's devices; "" turns pickup off.
	PickupCode string `koanf:"pickup_code"`
	// TLS is the SIP-over-TLS listen address; "" (the default) turns it
	// off. TLSCert and TLSKey are the PEM files of its certificate chain
	// and private key.
	TLS     string `koanf:"tls"`
	TLSCert string `koanf:"tls_cert"`
	TLSKey  string `koanf:"tls_key"`
	// SRTP is SDES-SRTP (RFC 4568) on the SIP legs: "off" (the default,
	// plain RTP), "optional" (answer a phone's SRTP offer, offer plain
	// RTP) or "required" (offer SRTP, refuse plain RTP with 488).
	SRTP string `koanf:"srtp"`
}

// GatewayMedia configures the gateway's RTP.
type GatewayMedia struct {
	// IP is where RTP sockets bind (both toward phones and P2P peers).
	IP string `koanf:"ip"`
	// SRTP encrypts the P2P legs; the SIP legs follow sip.srtp.
	SRTP bool `koanf:"srtp"`
	// Timeout ends a call whose SIP leg has sent nothing this long.
	Timeout time.Duration `koanf:"timeout"`
}

// GatewaySignal caps the P2P signaling listener the gateway's devices
// share (endpoint.Host): connections that have not finished TLS and sent
// their first message, per source address and in total, and the time they
// have. A gateway's devices are called by many softphones, often from few
// addresses (an office behind one NAT), so the caps are higher than a
// phone's (signal.* of `baton phone`: 32 and 1,024).
type GatewaySignal struct {
	MaxPreAuthPerSource int           `koanf:"max_preauth_per_source"`
	MaxPreAuth          int           `koanf:"max_preauth"`
	PreAuthTimeout      time.Duration `koanf:"preauth_timeout"`
}

// SIPTrunk is a SIP provider (PSTN trunk). Its calls come in without
// digest from its addresses and reach the P2P target their number routes
// to, as calls of the P2P device Device.
type SIPTrunk struct {
	// Name labels the trunk in logs and status.
	Name string `koanf:"name"`
	// Device is the P2P identity the trunk's callers appear as, e.g.
	// pstn/trunk1; PasswordFile holds its P2P password.
	Device       string `koanf:"device"`
	PasswordFile string `koanf:"password_file"`
	// Allow are the addresses or CIDR ranges calls are accepted from.
	Allow []string `koanf:"allow"`
	// Numbers route dialled numbers to P2P targets; Route takes every
	// other number ("" refuses them with 404).
	Numbers []TrunkNumber `koanf:"numbers"`
	Route   string        `koanf:"route"`
	// Registrar is the provider's host:port to register with ("" for
	// none), with AuthUser and the password in AuthPasswordFile; Expires
	// is the registration time asked for.
	Registrar string `koanf:"registrar"`
	// Proxy is where calls out through the trunk are sent ("" = the
	// registrar).
	Proxy            string        `koanf:"proxy"`
	AuthUser         string        `koanf:"auth_user"`
	AuthPasswordFile string        `koanf:"auth_password_file"`
	Expires          time.Duration `koanf:"expires"`
}

// DialRule is one rule of the dial plan: a dialled number starting with
// Prefix loses its first Strip characters, gets Prepend in front and goes
// out through trunk Trunk.
type DialRule struct {
	Prefix  string `koanf:"prefix"`
	Strip   int    `koanf:"strip"`
	Prepend string `koanf:"prepend"`
	Trunk   string `koanf:"trunk"`
}

// TrunkNumber routes one dialled number of a trunk.
type TrunkNumber struct {
	// Number is the Request-URI user the provider sends, e.g. +15551234.
	Number string `koanf:"number"`
	// To is the P2P user or user/device it rings.
	To string `koanf:"to"`
}

// SIPAccount is one SIP user agent and the P2P device it appears as.
type SIPAccount struct {
	// SIPUser is the digest user name (and the AOR's user part).
	SIPUser string `koanf:"sip_user"`
	// HA1 is MD5(sip_user:realm:password) in hex (`baton gateway ha1`);
	// the SIP password itself is never stored.
	HA1 string `koanf:"ha1"`
	// Device is the P2P identity user/device, e.g. alice/desk.
	Device string `koanf:"device"`
	// PasswordFile holds the P2P password the device logs in with;
	// required unless the gateway has a credential.
	PasswordFile string `koanf:"password_file"`
	// MaxCalls bounds the device's calls at once (0: the gateway's
	// default, 8); the phone itself refuses what it cannot take (486).
	MaxCalls int `koanf:"max_calls"`
}

// DefaultGateway returns the defaults: SIP on loopback UDP and TCP 5060.
func DefaultGateway() Gateway {
	return Gateway{
		Log:    DefaultLog(),
		Access: "127.0.0.1:7000",
		SIP: SIP{UDP: "127.0.0.1:5060", TCP: "127.0.0.1:5060", Realm: "baton", NonceTTL: 5 * time.Minute,
			MinExpires: 60 * time.Second, MaxExpires: time.Hour, FailBurst: 10, FailEvery: 6 * time.Second, PickupCode: "*8",
			SRTP: "off"},
		Media:  GatewayMedia{IP: "127.0.0.1", SRTP: true, Timeout: 30 * time.Second},
		Signal: GatewaySignal{MaxPreAuthPerSource: 256, MaxPreAuth: 4096, PreAuthTimeout: 5 * time.Second},
		Codecs: []string{"PCMU", "PCMA"},
		Admin:  "127.0.0.1:0",

		Plugins: DefaultPlugins(),
	}
}

// GatewayFlags registers the flags of `baton gateway`.
func GatewayFlags(fs *pflag.FlagSet) {
	d := DefaultGateway()
	fs.String("access", d.Access, "access server `address`")
	fs.String("ca", d.CA, "`path` of the access server's CA certificate (required)")
	fs.String("sip-udp", d.SIP.UDP, "SIP UDP listen `address` (empty: off)")
	fs.String("sip-tcp", d.SIP.TCP, "SIP TCP listen `address` (empty: off)")
	fs.String("sip-tls", d.SIP.TLS, "SIP TLS listen `address` (empty: off; needs sip.tls_cert and sip.tls_key)")
	fs.String("media-ip", d.Media.IP, "local `IP` for RTP")
	fs.String("admin", d.Admin, "HTTP control API `address` (empty: off)")
}

func gatewaySpec() spec[Gateway] {
	return spec[Gateway]{
		command:  "gateway",
		defaults: DefaultGateway,
		flags: map[string]string{
			"access": "access", "ca": "ca", "sip-udp": "sip.udp", "sip-tcp": "sip.tcp", "sip-tls": "sip.tls",
			"media-ip": "media.ip", "admin": "admin",
		},
		validate: Gateway.Validate,
	}
}

// LoadGateway loads and validates the configuration of `baton gateway`.
func LoadGateway(src Source) (Gateway, error) { return load(gatewaySpec(), src) }

// Validate reports every invalid field, each error wrapping ErrInvalid.
func (g Gateway) Validate() error {
	var p problems
	g.Log.validate(&p)
	p.dialAddr("access", g.Access)
	p.required("ca", g.CA)
	own := g.Credential.Gateway == "" // each device logs in with its own password
	if !own {
		p.name("credential.gateway", g.Credential.Gateway)
		p.required("credential.secret_file", g.Credential.SecretFile)
	} else if g.Credential.SecretFile != "" {
		p.add("credential.gateway", shown("empty"), "name the gateway credential the secret_file belongs to (baton gateway add NAME), or leave credential.secret_file out")
	}
	p.listenAddr("sip.udp", g.SIP.UDP, true)
	p.listenAddr("sip.tcp", g.SIP.TCP, true)
	if g.SIP.UDP == "" && g.SIP.TCP == "" && g.SIP.TLS == "" {
		p.add("sip.udp and sip.tcp", shown("both empty, and sip.tls off"), "turn on at least one SIP listener")
	}
	if g.SIP.Advertise != "" && !validHost(g.SIP.Advertise) {
		p.add("sip.advertise", g.SIP.Advertise, "want an IP address or DNS name")
	}
	p.required("sip.realm", g.SIP.Realm)
	p.durationRange("sip.nonce_ttl", g.SIP.NonceTTL, 10*time.Second, 24*time.Hour)
	p.durationRange("sip.min_expires", g.SIP.MinExpires, time.Second, 24*time.Hour)
	p.durationRange("sip.max_expires", g.SIP.MaxExpires, g.SIP.MinExpires, 7*24*time.Hour)
	if g.SIP.FailBurst < 1 {
		p.add("sip.fail_burst", g.SIP.FailBurst, "want at least 1")
	}
	p.durationRange("sip.fail_every", g.SIP.FailEvery, 10*time.Millisecond, time.Hour)
	if c := g.SIP.PickupCode; c != "" && (len(c) > 16 || strings.Trim(c, "0123456789*#") != "") {
		p.add("sip.pickup_code", c, "want up to 16 of 0-9, * and #, e.g. *8 (or \"\" for off)")
	}
	switch g.SIP.SRTP {
	case "off", "optional", "required":
	default:
		p.add("sip.srtp", g.SIP.SRTP, "want off, optional or required")
	}
	p.mediaIP("media.ip", g.Media.IP)
	p.durationRange("media.timeout", g.Media.Timeout, time.Second, time.Hour)
	if g.Signal.MaxPreAuthPerSource < 1 || g.Signal.MaxPreAuthPerSource > 65536 {
		p.add("signal.max_preauth_per_source", g.Signal.MaxPreAuthPerSource, "want 1 to 65536")
	}
	if g.Signal.MaxPreAuth < g.Signal.MaxPreAuthPerSource || g.Signal.MaxPreAuth > 1<<20 {
		p.add("signal.max_preauth", g.Signal.MaxPreAuth, "want signal.max_preauth_per_source to 1048576")
	}
	p.durationRange("signal.preauth_timeout", g.Signal.PreAuthTimeout, 100*time.Millisecond, time.Minute)
	p.list("codecs", g.Codecs)
	seen := map[string]bool{}
	for i, a := range g.Accounts {
		key := "accounts[" + strconv.Itoa(i) + "]"
		p.name(key+".sip_user", a.SIPUser)
		if seen[a.SIPUser] {
			p.add(key+".sip_user", a.SIPUser, "configured twice")
		}
		seen[a.SIPUser] = true
		if len(a.HA1) != 32 || strings.Trim(strings.ToLower(a.HA1), "0123456789abcdef") != "" {
			p.add(key+".ha1", shown("(hidden)"), "want 32 hex digits, MD5(sip_user:realm:password); see `baton gateway ha1`")
		}
		user, dev, ok := strings.Cut(a.Device, "/")
		if !ok {
			p.add(key+".device", a.Device, "want user/device, e.g. alice/desk")
		} else {
			p.name(key+".device", user)
			p.name(key+".device", dev)
		}
		if own {
			p.required(key+".password_file", a.PasswordFile)
		}
		if a.MaxCalls < 0 || a.MaxCalls > 1024 {
			p.add(key+".max_calls", a.MaxCalls, "want 1 to 1024 (0 or unset: 8)")
		}
	}
	trunks := map[string]bool{}
	for i, t := range g.Trunks {
		t.validate(&p, "trunks["+strconv.Itoa(i)+"]", own)
		if trunks[t.Name] {
			p.add("trunks["+strconv.Itoa(i)+"].name", t.Name, "configured twice")
		}
		trunks[t.Name] = true
	}
	for i, r := range g.DialPlan {
		key := "dialplan[" + strconv.Itoa(i) + "]"
		if r.Prefix == "" || strings.Trim(r.Prefix, "+0123456789*#") != "" {
			p.add(key+".prefix", r.Prefix, "want digits, * and #, optionally a leading +, e.g. + or 00")
		}
		if r.Strip < 0 || r.Strip > 32 {
			p.add(key+".strip", r.Strip, "want 0 to 32")
		}
		if r.Prepend != "" && strings.Trim(r.Prepend, "+0123456789*#") != "" {
			p.add(key+".prepend", r.Prepend, "want digits, * and #, optionally a leading +")
		}
		if !trunks[r.Trunk] {
			p.add(key+".trunk", r.Trunk, "not the name of a configured trunk")
		}
	}
	p.listenAddr("admin", g.Admin, true)
	if g.SIP.TLS != "" {
		p.listenAddr("sip.tls", g.SIP.TLS, false)
		p.required("sip.tls_cert", g.SIP.TLSCert)
		p.required("sip.tls_key", g.SIP.TLSKey)
	} else if g.SIP.TLSCert != "" || g.SIP.TLSKey != "" {
		p.add("sip.tls", shown("empty"), "set it to a listen address, or leave sip.tls_cert and sip.tls_key out")
	}
	g.Plugins.validate(&p)
	return p.err()
}

func (t SIPTrunk) validate(p *problems, key string, ownPassword bool) {
	p.name(key+".name", t.Name)
	user, dev, ok := strings.Cut(t.Device, "/")
	if !ok {
		p.add(key+".device", t.Device, "want user/device, e.g. pstn/trunk1")
	} else {
		p.name(key+".device", user)
		p.name(key+".device", dev)
	}
	if ownPassword {
		p.required(key+".password_file", t.PasswordFile)
	}
	for _, a := range t.Allow {
		if _, err := netip.ParsePrefix(a); err != nil {
			if _, err := netip.ParseAddr(a); err != nil {
				p.add(key+".allow", a, "want an IP address or CIDR range, e.g. 192.0.2.10 or 192.0.2.0/24")
			}
		}
	}
	if t.Proxy != "" {
		p.dialAddr(key+".proxy", t.Proxy)
	}
	if len(t.Allow) == 0 && t.Registrar == "" && t.Proxy == "" {
		p.add(key+".allow", shown("empty"), "list the provider's addresses (or set registrar or proxy): calls are accepted only from them")
	}
	seen := map[string]bool{}
	for j, n := range t.Numbers {
		nk := key + ".numbers[" + strconv.Itoa(j) + "]"
		if n.Number == "" || strings.Trim(n.Number, "+0123456789*#") != "" || len(n.Number) > 32 {
			p.add(nk+".number", n.Number, "want digits, optionally with a leading + (E.164), * and #")
		}
		if seen[n.Number] {
			p.add(nk+".number", n.Number, "routed twice")
		}
		seen[n.Number] = true
		p.target(nk+".to", n.To)
	}
	if t.Route != "" {
		p.target(key+".route", t.Route)
	}
	if t.Registrar != "" {
		p.dialAddr(key+".registrar", t.Registrar)
		if (t.AuthUser == "") != (t.AuthPasswordFile == "") {
			p.add(key+".auth_user and auth_password_file", shown(t.AuthUser), "set both or neither")
		}
	}
	if t.Expires != 0 {
		p.durationRange(key+".expires", t.Expires, time.Minute, 24*time.Hour)
	}
}
