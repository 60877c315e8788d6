package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// vcase mutates a valid config; key is the field the error must name, or
// "" when the mutated config is still valid (boundary values).
type vcase[T any] struct {
	name   string
	mutate func(*T)
	key    string
}

func runValidate[T any](t *testing.T, base func() T, validate func(T) error, cases []vcase[T]) {
	t.Helper()
	if err := validate(base()); err != nil {
		t.Fatalf("base config invalid: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := base()
			tc.mutate(&c)
			err := validate(c)
			if tc.key == "" {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				return
			}
			wantErr(t, err, ErrInvalid, "config: "+tc.key+": ")
		})
	}
}

func validPhone() Phone {
	p := DefaultPhone()
	p.CA, p.User, p.Device, p.PasswordFile = "ca.pem", "alice", "laptop", "pw"
	return p
}

func TestValidateAccess(t *testing.T) {
	t.Parallel()
	runValidate(t, DefaultAccess, Access.Validate, []vcase[Access]{
		{"log level unknown", func(c *Access) { c.Log.Level = LogLevelUnknown }, "log.level"},
		{"log format unknown", func(c *Access) { c.Log.Format = LogFormatUnknown }, "log.format"},
		{"listen empty", func(c *Access) { c.Listen = "" }, "listen"},
		{"listen without port", func(c *Access) { c.Listen = "127.0.0.1" }, "listen"},
		{"listen port too big", func(c *Access) { c.Listen = "127.0.0.1:65536" }, "listen"},
		{"listen named port", func(c *Access) { c.Listen = "127.0.0.1:https" }, "listen"},
		{"listen bad host", func(c *Access) { c.Listen = "bad host!:7000" }, "listen"},
		{"listen all interfaces", func(c *Access) { c.Listen = ":7000" }, ""},
		{"listen by name", func(c *Access) { c.Listen = "localhost:7000" }, ""},
		{"listen ipv6", func(c *Access) { c.Listen = "[::1]:65535" }, ""},
		{"data_dir empty", func(c *Access) { c.DataDir = " " }, "data_dir"},
		{"admin off", func(c *Access) { c.Admin = "" }, ""},
		{"admin bad", func(c *Access) { c.Admin = "127.0.0.1:-1" }, "admin"},
		{"server_names empty", func(c *Access) { c.ServerNames = nil }, "server_names"},
		{"server_names duplicate", func(c *Access) { c.ServerNames = []string{"localhost", "LOCALHOST"} }, "server_names"},
		{"server_names blank", func(c *Access) { c.ServerNames = []string{""} }, "server_names"},
		{"server_names not a name", func(c *Access) { c.ServerNames = []string{"under_score.example"} }, "server_names"},
		{"credential_ttl below 1m", func(c *Access) { c.CredentialTTL = 59 * time.Second }, "credential_ttl"},
		{"credential_ttl 1m", func(c *Access) { c.CredentialTTL = time.Minute }, ""},
		{"presence.keepalive zero", func(c *Access) { c.Presence.Keepalive = 0 }, "presence.keepalive"},
		{"presence.timeout equal to keepalive", func(c *Access) { c.Presence.Timeout = c.Presence.Keepalive }, "presence.timeout"},
		{"presence.timeout just above keepalive", func(c *Access) { c.Presence.Timeout = c.Presence.Keepalive + 1 }, ""},
		{"limits.login_timeout zero", func(c *Access) { c.Limits.LoginTimeout = 0 }, "limits.login_timeout"},
		{"limits.login_timeout 100ms", func(c *Access) { c.Limits.LoginTimeout = 100 * time.Millisecond }, ""},
		{"limits.login_timeout 6m", func(c *Access) { c.Limits.LoginTimeout = 6 * time.Minute }, "limits.login_timeout"},
		{"limits.max_pending zero", func(c *Access) { c.Limits.MaxPending = 0 }, "limits.max_pending"},
		{"limits.max_pending_per_source zero", func(c *Access) { c.Limits.MaxPendingPerSource = 0 }, "limits.max_pending_per_source"},
		{"limits.max_pending_per_source above max_pending", func(c *Access) { c.Limits.MaxPendingPerSource = c.Limits.MaxPending + 1 }, "limits.max_pending_per_source"},
		{"limits.max_pending_per_source equal to max_pending", func(c *Access) { c.Limits.MaxPendingPerSource = c.Limits.MaxPending }, ""},
		{"limits.max_login_frame too small for a login", func(c *Access) { c.Limits.MaxLoginFrame = 4095 }, "limits.max_login_frame"},
		{"limits.max_login_frame above the frame limit", func(c *Access) { c.Limits.MaxLoginFrame = 256<<10 + 1 }, "limits.max_login_frame"},
		{"limits.max_login_frame 256 KiB", func(c *Access) { c.Limits.MaxLoginFrame = 256 << 10 }, ""},
		{"limits.source_fail_burst zero", func(c *Access) { c.Limits.SourceFailBurst = 0 }, "limits.source_fail_burst"},
		{"limits.source_fail_interval zero", func(c *Access) { c.Limits.SourceFailInterval = 0 }, "limits.source_fail_interval"},
		{"limits.user_fail_burst negative", func(c *Access) { c.Limits.UserFailBurst = -1 }, "limits.user_fail_burst"},
		{"limits.user_fail_interval 25h", func(c *Access) { c.Limits.UserFailInterval = 25 * time.Hour }, "limits.user_fail_interval"},
		{"limits.max_tracked 15", func(c *Access) { c.Limits.MaxTracked = 15 }, "limits.max_tracked"},
		{"limits.max_tracked 16", func(c *Access) { c.Limits.MaxTracked = 16 }, ""},
		{"limits.trusted ranges and addresses", func(c *Access) { c.Limits.Trusted = []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", " ::1 "} }, ""},
		{"limits.trusted not a range", func(c *Access) { c.Limits.Trusted = []string{"10.0.0.0/8", "office"} }, "limits.trusted"},
		{"limits.trusted bad prefix length", func(c *Access) { c.Limits.Trusted = []string{"10.0.0.0/33"} }, "limits.trusted"},
		{"limits.trusted zone", func(c *Access) { c.Limits.Trusted = []string{"fe80::1%eth0"} }, "limits.trusted"},
	})
}

// TestAccessLimitsLoad: the limits come through file and environment, and
// trusted ranges are parsed and masked.
func TestAccessLimitsLoad(t *testing.T) {
	t.Parallel()
	file := []byte("limits:\n  source_fail_burst: 7\n  trusted: [10.1.2.3/8, 192.0.2.9]\n")
	c, err := loadBytes(accessSpec(), Source{File: "access.yaml", Env: []string{"BATON_LIMITS__MAX_PENDING=50", "BATON_LIMITS__USER_FAIL_INTERVAL=1m"}}, file)
	if err != nil {
		t.Fatal(err)
	}
	l := c.Limits
	if l.SourceFailBurst != 7 || l.MaxPending != 50 || l.UserFailInterval != time.Minute || l.UserFailBurst != 5 || l.LoginTimeout != 5*time.Second {
		t.Fatalf("limits %+v", l)
	}
	got := fmt.Sprint(l.TrustedPrefixes())
	if got != "[10.0.0.0/8 192.0.2.9/32]" {
		t.Fatalf("TrustedPrefixes = %s", got)
	}
	_, err = loadBytes(accessSpec(), Source{File: "access.yaml", Env: []string{}}, []byte("limits:\n  max_pendng: 3\n"))
	wantErr(t, err, ErrUnknownKey, `"limits.max_pendng"`, `"limits.max_pending"`)
}

func TestValidatePhone(t *testing.T) {
	t.Parallel()
	runValidate(t, validPhone, Phone.Validate, []vcase[Phone]{
		{"policy plugin off with args", func(c *Phone) { c.Plugins.Policy.Args = []string{"-rules", "x"} }, "plugins.policy.path"},
		{"policy plugin", func(c *Phone) { c.Plugins.Policy.Path = "policy-rules" }, ""},
		{"policy plugin bad fail_mode", func(c *Phone) { c.Plugins.Policy.Path, c.Plugins.Policy.FailMode = "p", "open" }, "plugins.policy.fail_mode"},
		{"policy plugin timeout 0", func(c *Phone) { c.Plugins.Policy.Path, c.Plugins.Policy.Timeout = "p", 0 }, "plugins.policy.timeout"},
		{"policy plugin sha256 short", func(c *Phone) { c.Plugins.Policy.Path, c.Plugins.Policy.SHA256 = "p", "abc" }, "plugins.policy.sha256"},
		{"codec plugin without path", func(c *Phone) { c.Plugins.Codecs = []CodecPlugin{{Args: []string{"-rate", "8000"}}} }, "plugins.codecs[0].path"},
		{"codec plugin sha256 short", func(c *Phone) { c.Plugins.Codecs = []CodecPlugin{{Path: "p"}, {Path: "q", SHA256: "abc"}} }, "plugins.codecs[1].sha256"},
		{"codec plugin frame_timeout", func(c *Phone) { c.Plugins.Codecs = []CodecPlugin{{Path: "p", FrameTimeout: 5 * time.Second}} }, "plugins.codecs[0].frame_timeout"},
		{"codec plugin fallback", func(c *Phone) { c.Plugins.Codecs = []CodecPlugin{{Path: "p", Fallback: "G729"}} }, "plugins.codecs[0].fallback"},
		{"codec plugin fallback lower case", func(c *Phone) { c.Plugins.Codecs = []CodecPlugin{{Path: "p", Fallback: "pcmu"}} }, "plugins.codecs[0].fallback"},
		{"codec plugin fallback_after", func(c *Phone) { c.Plugins.Codecs = []CodecPlugin{{Path: "p", FallbackAfter: time.Minute}} }, "plugins.codecs[0].fallback_after"},
		{"access empty", func(c *Phone) { c.Access = "" }, "access"},
		{"access port 0", func(c *Phone) { c.Access = "127.0.0.1:0" }, "access"},
		{"access without host", func(c *Phone) { c.Access = ":7000" }, "access"},
		{"access by name", func(c *Phone) { c.Access = "access.example.com:7000" }, ""},
		{"ca empty", func(c *Phone) { c.CA = "" }, "ca"},
		{"user empty", func(c *Phone) { c.User = "" }, "user"},
		{"user upper case", func(c *Phone) { c.User = "Alice" }, "user"},
		{"user starts with dot", func(c *Phone) { c.User = ".alice" }, "user"},
		{"user 65 chars", func(c *Phone) { c.User = strings.Repeat("a", 65) }, "user"},
		{"user 64 chars", func(c *Phone) { c.User = strings.Repeat("a", 64) }, ""},
		{"user all allowed chars", func(c *Phone) { c.User = "0a.b_c-d" }, ""},
		{"device empty", func(c *Phone) { c.Device = "" }, "device"},
		{"device with slash", func(c *Phone) { c.Device = "desk/1" }, "device"},
		{"password_file empty", func(c *Phone) { c.PasswordFile = "" }, "password_file"},
		{"signal.listen empty", func(c *Phone) { c.Signal.Listen = "" }, "signal.listen"},
		{"signal.listen bad port", func(c *Phone) { c.Signal.Listen = "127.0.0.1:99999" }, "signal.listen"},
		{"media.ip name", func(c *Phone) { c.Media.IP = "localhost" }, "media.ip"},
		{"media.ip empty", func(c *Phone) { c.Media.IP = "" }, "media.ip"},
		{"media.ip unspecified", func(c *Phone) { c.Media.IP = "0.0.0.0" }, "media.ip"},
		{"media.ip multicast", func(c *Phone) { c.Media.IP = "224.0.0.1" }, "media.ip"},
		{"media.ip ipv6", func(c *Phone) { c.Media.IP = "::1" }, ""},
		{"codecs empty", func(c *Phone) { c.Codecs = []string{} }, "codecs"},
		{"codecs duplicate", func(c *Phone) { c.Codecs = []string{"PCMU", "pcmu"} }, "codecs"},
		{"codecs blank entry", func(c *Phone) { c.Codecs = []string{"PCMU", ""} }, "codecs"},
		{"codecs one", func(c *Phone) { c.Codecs = []string{"PCMA"} }, ""},
		{"ptime 0", func(c *Phone) { c.Ptime = 0 }, "ptime"},
		{"ptime 5ms", func(c *Phone) { c.Ptime = 5 * time.Millisecond }, "ptime"},
		{"ptime not a multiple of 10ms", func(c *Phone) { c.Ptime = 25 * time.Millisecond }, "ptime"},
		{"ptime 70ms", func(c *Phone) { c.Ptime = 70 * time.Millisecond }, "ptime"},
		{"ptime 10ms", func(c *Phone) { c.Ptime = 10 * time.Millisecond }, ""},
		{"ptime 60ms", func(c *Phone) { c.Ptime = 60 * time.Millisecond }, ""},
		{"max_calls 0", func(c *Phone) { c.MaxCalls = 0 }, "max_calls"},
		{"max_calls 2000", func(c *Phone) { c.MaxCalls = 2000 }, "max_calls"},
		{"max_calls 8", func(c *Phone) { c.MaxCalls = 8 }, ""},
		{"preauth per source 0", func(c *Phone) { c.Signal.MaxPreAuthPerSource = 0 }, "signal.max_preauth_per_source"},
		{"preauth total below per source", func(c *Phone) { c.Signal.MaxPreAuth = 4 }, "signal.max_preauth"},
		{"preauth timeout 0", func(c *Phone) { c.Signal.PreAuthTimeout = 0 }, "signal.preauth_timeout"},
		{"preauth tight", func(c *Phone) {
			c.Signal.MaxPreAuthPerSource, c.Signal.MaxPreAuth, c.Signal.PreAuthTimeout = 1, 1, time.Second
		}, ""},
		{"jitter.delay negative", func(c *Phone) { c.Jitter.Delay = -time.Millisecond }, "jitter.delay"},
		{"jitter.delay over 500ms", func(c *Phone) { c.Jitter.Delay = 501 * time.Millisecond }, "jitter.delay"},
		{"jitter.delay 0", func(c *Phone) { c.Jitter.Delay = 0 }, ""},
		{"jitter.delay 500ms", func(c *Phone) { c.Jitter.Delay = 500 * time.Millisecond }, ""},
		{"audio.tone negative", func(c *Phone) { c.Audio.Tone = -1 }, "audio.tone"},
		{"audio.tone 4000", func(c *Phone) { c.Audio.Tone = 4000 }, "audio.tone"},
		{"audio.tone 3999", func(c *Phone) { c.Audio.Tone = 3999 }, ""},
		{"audio.play with tone", func(c *Phone) { c.Audio.Play, c.Audio.Tone = "a.wav", 440 }, "audio.play and audio.tone"},
		{"audio.play alone", func(c *Phone) { c.Audio.Play = "a.wav" }, ""},
		{"admin off", func(c *Phone) { c.Admin = "" }, ""},
		{"admin bad", func(c *Phone) { c.Admin = "127.0.0.1" }, "admin"},
		{"keepalive negative", func(c *Phone) { c.Keepalive = -time.Second }, "keepalive"},
	})
}

func validGateway() Gateway {
	g := DefaultGateway()
	g.CA = "ca.pem"
	g.Accounts = []SIPAccount{{SIPUser: "alice", HA1: strings.Repeat("0f", 16), Device: "alice/desk", PasswordFile: "alice.pw"}}
	return g
}

func validTrunk() SIPTrunk {
	return SIPTrunk{Name: "pstn", Device: "pstn/trunk1", PasswordFile: "pstn.pw", Allow: []string{"127.0.0.5", "10.0.0.0/8"},
		Numbers: []TrunkNumber{{Number: "+15551230", To: "alice/desk"}}, Route: "bob"}
}

func TestValidateGateway(t *testing.T) {
	t.Parallel()
	runValidate(t, validGateway, Gateway.Validate, []vcase[Gateway]{
		{"ca empty", func(c *Gateway) { c.CA = "" }, "ca"},
		{"no sip listener", func(c *Gateway) { c.SIP.UDP, c.SIP.TCP = "", "" }, "sip.udp and sip.tcp"},
		{"signal preauth per source 0", func(c *Gateway) { c.Signal.MaxPreAuthPerSource = 0 }, "signal.max_preauth_per_source"},
		{"signal preauth total below per source", func(c *Gateway) { c.Signal.MaxPreAuth = 100 }, "signal.max_preauth"},
		{"signal preauth timeout", func(c *Gateway) { c.Signal.PreAuthTimeout = time.Hour }, "signal.preauth_timeout"},
		{"codec plugins at the gateway", func(c *Gateway) { c.Plugins.Codecs = []CodecPlugin{{Path: "codec-opus"}} }, ""},
		{"codec plugin without path at the gateway", func(c *Gateway) { c.Plugins.Codecs = []CodecPlugin{{}} }, "plugins.codecs[0].path"},
		{"udp only", func(c *Gateway) { c.SIP.TCP = "" }, ""},
		{"pickup_code off", func(c *Gateway) { c.SIP.PickupCode = "" }, ""},
		{"pickup_code digits and #", func(c *Gateway) { c.SIP.PickupCode = "#0123456789*" }, ""},
		{"pickup_code 16", func(c *Gateway) { c.SIP.PickupCode = strings.Repeat("*", 16) }, ""},
		{"pickup_code 17", func(c *Gateway) { c.SIP.PickupCode = strings.Repeat("*", 17) }, "sip.pickup_code"},
		{"pickup_code letters", func(c *Gateway) { c.SIP.PickupCode = "*pick" }, "sip.pickup_code"},
		{"sip.srtp optional", func(c *Gateway) { c.SIP.SRTP = "optional" }, ""},
		{"sip.srtp required", func(c *Gateway) { c.SIP.SRTP = "required" }, ""},
		{"sip.srtp empty", func(c *Gateway) { c.SIP.SRTP = "" }, "sip.srtp"},
		{"sip.srtp yes", func(c *Gateway) { c.SIP.SRTP = "yes" }, "sip.srtp"},
		{"ha1 short", func(c *Gateway) { c.Accounts[0].HA1 = "abc" }, "accounts[0].ha1"},
		{"ha1 not hex", func(c *Gateway) { c.Accounts[0].HA1 = strings.Repeat("zz", 16) }, "accounts[0].ha1"},
		{"device without slash", func(c *Gateway) { c.Accounts[0].Device = "alice" }, "accounts[0].device"},
		{"sip_user twice", func(c *Gateway) { c.Accounts = append(c.Accounts, c.Accounts[0]) }, "accounts[1].sip_user"},
		{"max_calls negative", func(c *Gateway) { c.Accounts[0].MaxCalls = -1 }, "accounts[0].max_calls"},
		{"max_calls too high", func(c *Gateway) { c.Accounts[0].MaxCalls = 1025 }, "accounts[0].max_calls"},
		{"fail_burst 0", func(c *Gateway) { c.SIP.FailBurst = 0 }, "sip.fail_burst"},
		{"max below min expires", func(c *Gateway) { c.SIP.MaxExpires = c.SIP.MinExpires - 1 }, "sip.max_expires"},
		{"trunk", func(c *Gateway) { c.Trunks = []SIPTrunk{validTrunk()} }, ""},
		{"trunk device without slash", func(c *Gateway) { t := validTrunk(); t.Device = "pstn"; c.Trunks = []SIPTrunk{t} }, "trunks[0].device"},
		{"trunk allow not an address", func(c *Gateway) { t := validTrunk(); t.Allow = []string{"provider.example"}; c.Trunks = []SIPTrunk{t} }, "trunks[0].allow"},
		{"trunk without allow or registrar", func(c *Gateway) { t := validTrunk(); t.Allow = nil; c.Trunks = []SIPTrunk{t} }, "trunks[0].allow"},
		{"trunk registrar only", func(c *Gateway) {
			t := validTrunk()
			t.Allow, t.Registrar = nil, "127.0.0.1:5070"
			c.Trunks = []SIPTrunk{t}
		}, ""},
		{"trunk number letters", func(c *Gateway) { t := validTrunk(); t.Numbers[0].Number = "+1555abc"; c.Trunks = []SIPTrunk{t} }, "trunks[0].numbers[0].number"},
		{"trunk number twice", func(c *Gateway) {
			t := validTrunk()
			t.Numbers = append(t.Numbers, t.Numbers[0])
			c.Trunks = []SIPTrunk{t}
		}, "trunks[0].numbers[1].number"},
		{"trunk route bad", func(c *Gateway) { t := validTrunk(); t.Route = "Alice!"; c.Trunks = []SIPTrunk{t} }, "trunks[0].route"},
		{"trunk auth user without password", func(c *Gateway) {
			t := validTrunk()
			t.Registrar, t.AuthUser = "127.0.0.1:5070", "gw"
			c.Trunks = []SIPTrunk{t}
		}, "trunks[0].auth_user and auth_password_file"},
		{"dialplan", func(c *Gateway) {
			c.Trunks = []SIPTrunk{validTrunk()}
			c.DialPlan = []DialRule{{Prefix: "00", Strip: 2, Prepend: "+", Trunk: "pstn"}}
		}, ""},
		{"dialplan unknown trunk", func(c *Gateway) { c.DialPlan = []DialRule{{Prefix: "+", Trunk: "pstn"}} }, "dialplan[0].trunk"},
		{"dialplan bad prefix", func(c *Gateway) {
			c.Trunks = []SIPTrunk{validTrunk()}
			c.DialPlan = []DialRule{{Prefix: "9x", Trunk: "pstn"}}
		}, "dialplan[0].prefix"},
		{"trunk twice", func(c *Gateway) { c.Trunks = []SIPTrunk{validTrunk(), validTrunk()} }, "trunks[1].name"},
		{"trunk expires 1s", func(c *Gateway) { t := validTrunk(); t.Expires = time.Second; c.Trunks = []SIPTrunk{t} }, "trunks[0].expires"},
		{"password_file required without credential", func(c *Gateway) { c.Accounts[0].PasswordFile = "" }, "accounts[0].password_file"},
		{"credential: no password files needed", func(c *Gateway) {
			c.Credential = GatewayCredential{Gateway: "gw1", SecretFile: "gw1.secret"}
			c.Accounts[0].PasswordFile = ""
			t := validTrunk()
			t.PasswordFile = ""
			c.Trunks = []SIPTrunk{t}
		}, ""},
		{"credential without secret_file", func(c *Gateway) { c.Credential.Gateway = "gw1" }, "credential.secret_file"},
		{"credential bad name", func(c *Gateway) { c.Credential = GatewayCredential{Gateway: "GW 1", SecretFile: "s"} }, "credential.gateway"},
		{"secret_file without credential", func(c *Gateway) { c.Credential.SecretFile = "s" }, "credential.gateway"},
	})
}

func TestValidateDemo(t *testing.T) {
	t.Parallel()
	runValidate(t, DefaultDemo, Demo.Validate, []vcase[Demo]{
		{"duration under 1s", func(c *Demo) { c.Duration = 999 * time.Millisecond }, "duration"},
		{"duration over 60s", func(c *Demo) { c.Duration = 61 * time.Second }, "duration"},
		{"duration 60s", func(c *Demo) { c.Duration = time.Minute }, ""},
		{"tone.caller 0", func(c *Demo) { c.Tone.Caller = 0 }, "tone.caller"},
		{"tone.callee 4000", func(c *Demo) { c.Tone.Callee = 4000 }, "tone.callee"},
		{"tone.pstn 0", func(c *Demo) { c.Tone.PSTN = 0 }, "tone.pstn"},
		{"desk phone like the caller", func(c *Demo) { c.Tone.DeskPhone = c.Tone.Caller }, "tone"},
		{"pstn like the laptop", func(c *Demo) { c.Tone.PSTN = c.Tone.Laptop }, "tone"},
		{"admin bad", func(c *Demo) { c.Admin = "x" }, "admin"},
		{"admin on", func(c *Demo) { c.Admin = "127.0.0.1:0" }, ""},
		{"log format unknown", func(c *Demo) { c.Log.Format = LogFormat(9) }, "log.format"},
	})
}

func TestValidateCtl(t *testing.T) {
	t.Parallel()
	runValidate(t, DefaultCtl, Ctl.Validate, []vcase[Ctl]{
		{"admin empty", func(c *Ctl) { c.Admin = "" }, "admin"},
		{"admin port 0", func(c *Ctl) { c.Admin = "127.0.0.1:0" }, "admin"},
		{"timeout zero", func(c *Ctl) { c.Timeout = 0 }, "timeout"},
		{"endpoint without device", func(c *Ctl) { c.Endpoint = "alice" }, "endpoint"},
		{"endpoint bad name", func(c *Ctl) { c.Endpoint = "Alice/desk" }, "endpoint"},
		{"endpoint", func(c *Ctl) { c.Endpoint = "alice/desk" }, ""},
	})
}

func TestValidateUser(t *testing.T) {
	t.Parallel()
	runValidate(t, DefaultUser, User.Validate, []vcase[User]{
		{"data_dir empty", func(c *User) { c.DataDir = "" }, "data_dir"},
	})
}

// TestValidationMessage pins the message format the brief specifies.
func TestValidationMessage(t *testing.T) {
	t.Parallel()
	p := validPhone()
	p.Signal.Listen = "127.0.0.1:99999"
	const want = `config: signal.listen: "127.0.0.1:99999": invalid port`
	if err := p.Validate(); err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// TestValidationCollectsAll checks that one run reports every problem.
func TestValidationCollectsAll(t *testing.T) {
	t.Parallel()
	err := DefaultPhone().Validate() // the four required keys are empty
	wantErr(t, err, ErrInvalid, "config: ca: ", "config: user: ", "config: device: ", "config: password_file: ")
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 4 {
		t.Errorf("got %v, want exactly 4 joined errors", err)
	}
	// And through the loader, the same problems with file-sourced values.
	_, err = LoadPhone(Source{File: writeFile(t, "ptime: 25ms\nuser: Bob\n"), Env: []string{}})
	wantErr(t, err, ErrInvalid, "config: ptime: ", `config: user: "Bob"`, "config: ca: ")
}
