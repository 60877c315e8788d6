package config

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"
)

// Demo configures `baton demo`: an access server and two phones in one
// process, a call between them with a tone each way, recordings on disk.
type Demo struct {
	Log Log `koanf:"log"`
	// OutDir receives the data directory and recordings; "" makes a new
	// temporary directory.
	OutDir string `koanf:"out_dir"`
	// Duration is how long the call lasts.
	Duration time.Duration `koanf:"duration"`
	Tone     DemoTones     `koanf:"tone"`
	// Admin is the HTTP control API address; "" turns it off.
	Admin string `koanf:"admin"`
	// KeepData keeps the access server's data directory (users, CA) in
	// OutDir after the demo; the recordings and the log are always kept.
	KeepData bool `koanf:"keep_data"`
	// CheckTargets makes a missed speed target (frames lost, gaps, time to
	// hear the far party) fail the demo; false reports it only, for loaded
	// machines.
	CheckTargets bool `koanf:"check_targets"`
	// SIP adds the gateway's part: a built-in SIP desk phone (carol/desk)
	// and a simulated PSTN trunk, both on real loopback sockets in
	// process; a PSTN caller reaches a softphone, the softphone calls the
	// desk phone; then the transfer story (a trunk call moved from alice's
	// SIP desk phone to her softphone, back, and transferred to bob), with
	// a ladder per move.
	SIP bool `koanf:"sip"`
}

// DemoTones are the frequencies each side sends, distinct so a recording
// shows whose audio it holds.
type DemoTones struct {
	// Caller is bob/mobile's tone, Callee alice/desk's (the device that
	// answers), Laptop alice/laptop's (the device that pulls the call).
	Caller int `koanf:"caller"`
	Callee int `koanf:"callee"`
	Laptop int `koanf:"laptop"`
	// DeskPhone is the built-in SIP desk phone's tone, PSTN the simulated
	// trunk caller's (the SIP part).
	DeskPhone int `koanf:"desk_phone"`
	PSTN      int `koanf:"pstn"`
}

// DefaultDemo returns the defaults: a 3 s call, 440 Hz one way, 660 Hz back.
func DefaultDemo() Demo {
	return Demo{
		Log:          DefaultLog(),
		Duration:     3 * time.Second,
		Tone:         DemoTones{Caller: 440, Callee: 660, Laptop: 880, DeskPhone: 550, PSTN: 770},
		CheckTargets: true,
		SIP:          true,
	}
}

// DemoFlags registers the flags of `baton demo` with their defaults.
func DemoFlags(fs *pflag.FlagSet) {
	d := DefaultDemo()
	fs.String("out-dir", d.OutDir, "output `directory` (empty: a new temporary directory)")
	fs.Duration("duration", d.Duration, "call length")
	fs.String("admin", d.Admin, "HTTP control API `address` (empty: off)")
	fs.Bool("check-targets", d.CheckTargets, "fail the demo when a speed target is missed (false: report only)")
	fs.Bool("sip", d.SIP, "add the SIP part: a built-in desk phone and a simulated PSTN trunk through the gateway")
}

func demoSpec() spec[Demo] {
	return spec[Demo]{
		command:  "demo",
		defaults: DefaultDemo,
		flags:    map[string]string{"out-dir": "out_dir", "duration": "duration", "admin": "admin", "check-targets": "check_targets", "sip": "sip"},
		validate: Demo.Validate,
	}
}

// LoadDemo loads and validates the configuration of `baton demo`.
func LoadDemo(src Source) (Demo, error) { return load(demoSpec(), src) }

// Validate reports every invalid field, each error wrapping ErrInvalid.
func (d Demo) Validate() error {
	var p problems
	d.Log.validate(&p)
	p.durationRange("duration", d.Duration, time.Second, time.Minute)
	p.hz("tone.caller", d.Tone.Caller)
	p.hz("tone.callee", d.Tone.Callee)
	p.hz("tone.laptop", d.Tone.Laptop)
	p.hz("tone.desk_phone", d.Tone.DeskPhone)
	p.hz("tone.pstn", d.Tone.PSTN)
	tones := []int{d.Tone.Caller, d.Tone.Callee, d.Tone.Laptop, d.Tone.DeskPhone, d.Tone.PSTN}
	seen := map[int]bool{}
	for _, t := range tones {
		if seen[t] {
			p.add("tone", fmt.Sprintf("%d/%d/%d/%d/%d", d.Tone.Caller, d.Tone.Callee, d.Tone.Laptop, d.Tone.DeskPhone, d.Tone.PSTN),
				"the five tones must differ, so each recording shows whose audio it holds")
			break
		}
		seen[t] = true
	}
	p.listenAddr("admin", d.Admin, true)
	return p.err()
}
