package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Access configures `baton access`, the access server: login, presence and
// credentials (DESIGN.md §1). It is never on the call path.
type Access struct {
	Log Log `koanf:"log"`
	// Listen is the TCP address of the TLS login/presence service.
	Listen string `koanf:"listen"`
	// DataDir holds the SQLite users database and the CA.
	DataDir string `koanf:"data_dir"`
	// Admin is the HTTP control API address; "" turns it off.
	Admin string `koanf:"admin"`
	// ServerNames go into the access server's TLS certificate; endpoints
	// dial one of them.
	ServerNames []string `koanf:"server_names"`
	// CredentialTTL is the lifetime of the certificates issued to endpoints.
	CredentialTTL time.Duration `koanf:"credential_ttl"`
	Presence      Presence      `koanf:"presence"`
	Limits        AccessLimits  `koanf:"limits"`
}

// AccessLimits bound what a client that has not logged in can cost the
// access server (issue 11 §1): failed logins per source address and per
// user at a source, and connections not logged in yet. A source is an IPv4
// address or an IPv6 /64.
type AccessLimits struct {
	// LoginTimeout is how long a new connection has, from accept, to
	// complete TLS and send its login request.
	LoginTimeout time.Duration `koanf:"login_timeout"`
	// MaxPending caps connections that have not logged in, in total;
	// MaxPendingPerSource per source. The excess is closed at accept.
	MaxPending          int `koanf:"max_pending"`
	MaxPendingPerSource int `koanf:"max_pending_per_source"`
	// MaxLoginFrame is the largest first frame (the login request) in
	// bytes; a bigger declared frame is refused from its header.
	MaxLoginFrame int `koanf:"max_login_frame"`
	// SourceFailBurst failed logins are allowed from one source, then one
	// per SourceFailInterval; UserFailBurst per user at one source, then
	// one per UserFailInterval. Over the limit a login is refused as
	// rate-limited without checking the password.
	SourceFailBurst    int           `koanf:"source_fail_burst"`
	SourceFailInterval time.Duration `koanf:"source_fail_interval"`
	UserFailBurst      int           `koanf:"user_fail_burst"`
	UserFailInterval   time.Duration `koanf:"user_fail_interval"`
	// MaxTracked bounds the limiter's table of sources and user-at-source
	// pairs; the entry idle longest goes first.
	MaxTracked int `koanf:"max_tracked"`
	// Trusted are source ranges (CIDR, or a single address) exempt from
	// the failed-login limits and from max_pending_per_source.
	Trusted []string `koanf:"trusted"`
}

// TrustedPrefixes returns Trusted parsed (masked); Validate has checked
// every entry.
func (l AccessLimits) TrustedPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range l.Trusted {
		if p, err := parseRange(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parseRange reads "10.0.0.0/8", "2001:db8::/32" or a single address.
func parseRange(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("zone %q not allowed", a.Zone())
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return p.Masked(), nil
}

// Presence tunes how the access server decides an endpoint is offline.
type Presence struct {
	// Keepalive is the interval endpoints are told to use.
	Keepalive time.Duration `koanf:"keepalive"`
	// Timeout is how long an endpoint may stay silent before it is
	// reported offline; it must exceed Keepalive.
	Timeout time.Duration `koanf:"timeout"`
	// Plugin is the presence backend plugin; an empty path keeps the
	// embedded in-memory store.
	Plugin PresencePlugin `koanf:"plugin"`
}

// PresencePlugin is a presence backend plugin (plugins.LoadPresence), e.g.
// presence-redis, which lets access servers share one presence space.
type PresencePlugin struct {
	// Path is the plugin binary.
	Path string `koanf:"path"`
	// Args are passed to the plugin, e.g. ["-addr", "127.0.0.1:6379"].
	Args []string `koanf:"args"`
	// SHA256 pins the binary's hex sha256; empty pins the hash of the
	// binary found at start.
	SHA256 string `koanf:"sha256"`
	// Timeout is the deadline of one store call; past it a login fails
	// with "presence unavailable" instead of waiting on a hung plugin.
	Timeout time.Duration `koanf:"timeout"`
	// Owner names this server's presence to a shared backend (its leases
	// in Redis); servers sharing one must differ. Empty: a random name
	// per start.
	Owner string `koanf:"owner"`
}

func (pp PresencePlugin) validate(p *problems) {
	if pp.Path == "" {
		if len(pp.Args) > 0 || pp.SHA256 != "" || pp.Owner != "" {
			p.add("presence.plugin.path", shown("empty"), "set the plugin binary, or remove presence.plugin.args, sha256 and owner")
		}
		return
	}
	if pp.SHA256 != "" && (len(pp.SHA256) != 64 || strings.Trim(strings.ToLower(pp.SHA256), "0123456789abcdef") != "") {
		p.add("presence.plugin.sha256", pp.SHA256, "want 64 hex digits (sha256sum of the binary)")
	}
	p.durationRange("presence.plugin.timeout", pp.Timeout, time.Millisecond, time.Minute)
	if strings.ContainsAny(pp.Owner, " \t\r\n") {
		p.add("presence.plugin.owner", pp.Owner, "no spaces or line breaks")
	}
}

// DefaultAccess returns the defaults: loopback only, data in ./baton-data.
func DefaultAccess() Access {
	return Access{
		Log:           DefaultLog(),
		Listen:        "127.0.0.1:7000",
		DataDir:       "./baton-data",
		ServerNames:   []string{"127.0.0.1", "localhost"},
		CredentialTTL: time.Hour,
		Presence: Presence{Keepalive: 10 * time.Second, Timeout: 30 * time.Second,
			Plugin: PresencePlugin{Timeout: 2 * time.Second}},
		Limits: AccessLimits{
			LoginTimeout:        5 * time.Second,
			MaxPending:          1024,
			MaxPendingPerSource: 32,
			MaxLoginFrame:       8 << 10,
			SourceFailBurst:     20,
			SourceFailInterval:  10 * time.Second,
			UserFailBurst:       5,
			UserFailInterval:    30 * time.Second,
			MaxTracked:          100_000,
			Trusted:             []string{},
		},
	}
}

// AccessFlags registers the flags of `baton access` with their defaults.
func AccessFlags(fs *pflag.FlagSet) {
	d := DefaultAccess()
	fs.String("listen", d.Listen, "TCP `address` of the TLS login and presence service")
	fs.String("data-dir", d.DataDir, "`directory` of the users database and the CA")
	fs.String("admin", d.Admin, "HTTP control API `address` (empty: off)")
}

func accessSpec() spec[Access] {
	return spec[Access]{
		command:  "access",
		defaults: DefaultAccess,
		flags:    map[string]string{"listen": "listen", "data-dir": "data_dir", "admin": "admin"},
		validate: Access.Validate,
	}
}

// LoadAccess loads and validates the configuration of `baton access`.
func LoadAccess(src Source) (Access, error) { return load(accessSpec(), src) }

// Validate reports every invalid field, each error wrapping ErrInvalid.
func (a Access) Validate() error {
	var p problems
	a.Log.validate(&p)
	p.listenAddr("listen", a.Listen, false)
	p.required("data_dir", a.DataDir)
	p.listenAddr("admin", a.Admin, true)
	p.list("server_names", a.ServerNames)
	for _, n := range a.ServerNames {
		if strings.TrimSpace(n) != "" && !validHost(n) {
			p.add("server_names", n, "want an IP address or DNS name")
		}
	}
	if a.CredentialTTL < time.Minute {
		p.add("credential_ttl", a.CredentialTTL, "want at least 1m0s")
	}
	if a.Presence.Keepalive <= 0 {
		p.add("presence.keepalive", a.Presence.Keepalive, "must be positive")
	}
	if a.Presence.Timeout <= a.Presence.Keepalive {
		p.add("presence.timeout", a.Presence.Timeout,
			"must be greater than presence.keepalive ("+a.Presence.Keepalive.String()+")")
	}
	a.Limits.validate(&p)
	a.Presence.Plugin.validate(&p)
	return p.err()
}

func (l AccessLimits) validate(p *problems) {
	p.durationRange("limits.login_timeout", l.LoginTimeout, 100*time.Millisecond, 5*time.Minute)
	accessIntRange(p, "limits.max_pending", l.MaxPending, 1, 1_000_000)
	accessIntRange(p, "limits.max_pending_per_source", l.MaxPendingPerSource, 1, 1_000_000)
	if l.MaxPendingPerSource > l.MaxPending && l.MaxPending >= 1 {
		p.add("limits.max_pending_per_source", l.MaxPendingPerSource,
			fmt.Sprintf("must not exceed limits.max_pending (%d)", l.MaxPending))
	}
	// The login request is at most about 3 KiB (a 1024-byte password, a
	// 512-byte key in base64); the frame limit of every connection is 256 KiB.
	accessIntRange(p, "limits.max_login_frame", l.MaxLoginFrame, 4<<10, 256<<10)
	accessIntRange(p, "limits.source_fail_burst", l.SourceFailBurst, 1, 1_000_000)
	p.durationRange("limits.source_fail_interval", l.SourceFailInterval, time.Millisecond, 24*time.Hour)
	accessIntRange(p, "limits.user_fail_burst", l.UserFailBurst, 1, 1_000_000)
	p.durationRange("limits.user_fail_interval", l.UserFailInterval, time.Millisecond, 24*time.Hour)
	accessIntRange(p, "limits.max_tracked", l.MaxTracked, 16, 100_000_000)
	for i, s := range l.Trusted {
		if _, err := parseRange(s); err != nil {
			p.add("limits.trusted", l.Trusted, fmt.Sprintf("entry %d %q: want a CIDR range (10.0.0.0/8) or an IP address", i, s))
		}
	}
}

// accessIntRange checks that an integer limit lies in [lo, hi].
func accessIntRange(p *problems, key string, v, lo, hi int) {
	if v < lo || v > hi {
		p.add(key, v, fmt.Sprintf("want %d to %d", lo, hi))
	}
}
