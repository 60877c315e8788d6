package config

import (
	"time"

	"github.com/spf13/pflag"
)

// Phone configures `baton phone`, a P2P softphone endpoint that plays a WAV
// file or a tone instead of a microphone and records what it hears.
type Phone struct {
	Log Log `koanf:"log"`
	// Access is the access server's address.
	Access string `koanf:"access"`
	// CA is the path of the access server's CA certificate (required).
	CA string `koanf:"ca"`
	// User and Device name this endpoint, as in alice/laptop.
	User   string `koanf:"user"`
	Device string `koanf:"device"`
	// PasswordFile is the path of a file holding the password; the
	// password itself never appears in config, environment or flags.
	PasswordFile string `koanf:"password_file"`
	Signal       Signal `koanf:"signal"`
	Media        Media  `koanf:"media"`
	// Codecs lists codec names in order of preference.
	Codecs []string `koanf:"codecs"`
	// Ptime is the audio duration per RTP packet (RFC 4566 §6 "ptime").
	Ptime      time.Duration `koanf:"ptime"`
	Jitter     Jitter        `koanf:"jitter"`
	AutoAnswer bool          `koanf:"auto_answer"`
	// MaxCalls is how many calls the phone holds at once (default 1); a
	// call beyond it is refused as busy.
	MaxCalls int `koanf:"max_calls"`
	// AcceptFrom says whose calls are answered: "buddies" (and this user's
	// own devices; the rule outgoing calls follow) or "anyone".
	AcceptFrom string `koanf:"accept_from"`
	Audio      Audio  `koanf:"audio"`
	// Admin is the HTTP control API address; "" turns it off.
	Admin string `koanf:"admin"`
	// Keepalive overrides the interval the access server asks for; 0 means
	// use the server's.
	Keepalive time.Duration `koanf:"keepalive"`
	// Plugins loads a transfer policy plugin.
	Plugins Plugins `koanf:"plugins"`
}

// Signal configures the endpoint's direct signaling listener.
type Signal struct {
	// Listen is the TLS signaling address; port 0 picks a free one.
	Listen string `koanf:"listen"`
	// MaxPreAuthPerSource and MaxPreAuth cap connections that have not yet
	// completed the mutual TLS handshake and their first message, per
	// source address (an IPv6 /64) and in total; the excess is closed at
	// accept. PreAuthTimeout is the time such a connection has.
	MaxPreAuthPerSource int           `koanf:"max_preauth_per_source"`
	MaxPreAuth          int           `koanf:"max_preauth"`
	PreAuthTimeout      time.Duration `koanf:"preauth_timeout"`
}

// Media configures direct RTP.
type Media struct {
	// IP is the local address RTP binds to and peers send to.
	IP string `koanf:"ip"`
	// SRTP encrypts media (RFC 3711); off only for debugging with plain RTP.
	SRTP bool `koanf:"srtp"`
	// FallbackIPs are where media moves, in order, when IP disappears from
	// the machine mid-call; empty means the first other address it has.
	FallbackIPs []string `koanf:"fallback_ips"`
	// Watch is how often the media address is checked; 0 turns the check
	// (and the automatic move) off.
	Watch time.Duration `koanf:"watch"`
}

// Jitter configures the receive jitter buffer.
type Jitter struct {
	// Delay is the playout delay; 0 plays packets as they arrive.
	Delay time.Duration `koanf:"delay"`
}

// Audio replaces the sound card: what the phone sends and where it records.
type Audio struct {
	// Play is a WAV file to send; exclusive with Tone.
	Play string `koanf:"play"`
	// Tone is a sine frequency in Hz to send; 0 means none.
	Tone int `koanf:"tone"`
	// Record is a WAV file to write what the phone hears; "" means none.
	Record string `koanf:"record"`
}

// DefaultPhone returns the defaults. User, Device, CA and PasswordFile have
// none and must be set.
func DefaultPhone() Phone {
	return Phone{
		Log:    DefaultLog(),
		Access: "127.0.0.1:7000",
		Signal: Signal{Listen: "127.0.0.1:0", MaxPreAuthPerSource: 32, MaxPreAuth: 1024, PreAuthTimeout: 5 * time.Second},
		Media:  Media{IP: "127.0.0.1", SRTP: true, Watch: time.Second},
		Codecs: []string{"PCMU", "PCMA"},
		Ptime:  20 * time.Millisecond,
		Jitter: Jitter{Delay: 40 * time.Millisecond},
		Admin:  "127.0.0.1:0",

		MaxCalls:   1,
		AcceptFrom: "buddies",
		Plugins:    DefaultPlugins(),
	}
}

// PhoneFlags registers the flags of `baton phone` with their defaults.
func PhoneFlags(fs *pflag.FlagSet) {
	d := DefaultPhone()
	fs.String("access", d.Access, "access server `address`")
	fs.String("ca", d.CA, "`path` of the access server's CA certificate (required)")
	fs.String("user", d.User, "user `name` (required)")
	fs.String("device", d.Device, "device `name` (required)")
	fs.String("password-file", d.PasswordFile, "`path` of a file holding the password (required)")
	fs.String("signal-listen", d.Signal.Listen, "TLS signaling listen `address`")
	fs.String("media-ip", d.Media.IP, "local `IP` for RTP")
	fs.StringSlice("codecs", d.Codecs, "codec `names` in order of preference")
	fs.Bool("auto-answer", d.AutoAnswer, "answer incoming calls at once")
	fs.Int("max-calls", d.MaxCalls, "how many calls at once (`N`); one more is refused as busy")
	fs.String("accept-from", d.AcceptFrom, "whose calls to answer: `buddies` (and this user's own devices; the rule outgoing calls follow) or anyone")
	fs.String("play", d.Audio.Play, "WAV `file` to send as audio")
	fs.Int("tone", d.Audio.Tone, "send a sine tone of this many `Hz` (0: none)")
	fs.String("record", d.Audio.Record, "WAV `file` to record received audio into")
	fs.String("admin", d.Admin, "HTTP control API `address` (empty: off)")
}

func phoneSpec() spec[Phone] {
	return spec[Phone]{
		command:  "phone",
		defaults: DefaultPhone,
		flags: map[string]string{
			"access": "access", "ca": "ca", "user": "user", "device": "device",
			"password-file": "password_file", "signal-listen": "signal.listen",
			"media-ip": "media.ip", "codecs": "codecs", "auto-answer": "auto_answer", "accept-from": "accept_from", "max-calls": "max_calls",
			"play": "audio.play", "tone": "audio.tone", "record": "audio.record",
			"admin": "admin",
		},
		validate: Phone.Validate,
	}
}

// LoadPhone loads and validates the configuration of `baton phone`.
func LoadPhone(src Source) (Phone, error) { return load(phoneSpec(), src) }

// Validate reports every invalid field, each error wrapping ErrInvalid.
func (ph Phone) Validate() error {
	var p problems
	ph.Log.validate(&p)
	p.dialAddr("access", ph.Access)
	p.required("ca", ph.CA)
	p.name("user", ph.User)
	p.name("device", ph.Device)
	p.required("password_file", ph.PasswordFile)
	p.listenAddr("signal.listen", ph.Signal.Listen, false)
	if ph.Signal.MaxPreAuthPerSource < 1 || ph.Signal.MaxPreAuthPerSource > 65536 {
		p.add("signal.max_preauth_per_source", ph.Signal.MaxPreAuthPerSource, "want 1 to 65536")
	}
	if ph.Signal.MaxPreAuth < ph.Signal.MaxPreAuthPerSource || ph.Signal.MaxPreAuth > 1<<20 {
		p.add("signal.max_preauth", ph.Signal.MaxPreAuth, "want signal.max_preauth_per_source to 1048576")
	}
	p.durationRange("signal.preauth_timeout", ph.Signal.PreAuthTimeout, 100*time.Millisecond, time.Minute)
	if ph.MaxCalls < 1 || ph.MaxCalls > 1024 {
		p.add("max_calls", ph.MaxCalls, "want 1 to 1024")
	}
	p.mediaIP("media.ip", ph.Media.IP)
	for _, ip := range ph.Media.FallbackIPs {
		p.mediaIP("media.fallback_ips", ip)
	}
	p.durationRange("media.watch", ph.Media.Watch, 0, time.Minute)
	p.list("codecs", ph.Codecs)
	// 10ms steps keep every packet a whole number of 8 kHz G.711 samples
	// and match the ptime values SIP phones offer (RFC 3551 §4.5).
	if ph.Ptime < 10*time.Millisecond || ph.Ptime > 60*time.Millisecond || ph.Ptime%(10*time.Millisecond) != 0 {
		p.add("ptime", ph.Ptime, "want 10ms to 60ms in steps of 10ms")
	}
	p.durationRange("jitter.delay", ph.Jitter.Delay, 0, 500*time.Millisecond)
	if ph.Audio.Tone != 0 {
		p.hz("audio.tone", ph.Audio.Tone)
	}
	if ph.Audio.Play != "" && ph.Audio.Tone != 0 {
		p.add("audio.play and audio.tone", shown(show(ph.Audio.Play)+" and "+show(ph.Audio.Tone)),
			"set only one source of audio")
	}
	if ph.AcceptFrom != "buddies" && ph.AcceptFrom != "anyone" {
		p.add("accept_from", ph.AcceptFrom, "want buddies or anyone")
	}
	p.listenAddr("admin", ph.Admin, true)
	if ph.Keepalive < 0 {
		p.add("keepalive", ph.Keepalive, "must not be negative (0: use the server's interval)")
	}
	ph.Plugins.validate(&p)
	return p.err()
}
