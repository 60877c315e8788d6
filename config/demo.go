package config

import (
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
	// KeepData keeps OutDir after the demo instead of removing it.
	KeepData bool `koanf:"keep_data"`
}

// DemoTones are the frequencies each side sends, distinct so a recording
// shows whose audio it holds.
type DemoTones struct {
	Caller int `koanf:"caller"`
	Callee int `koanf:"callee"`
}

// DefaultDemo returns the defaults: a 3 s call, 440 Hz one way, 660 Hz back.
func DefaultDemo() Demo {
	return Demo{
		Log:      DefaultLog(),
		Duration: 3 * time.Second,
		Tone:     DemoTones{Caller: 440, Callee: 660},
	}
}

// DemoFlags registers the flags of `baton demo` with their defaults.
func DemoFlags(fs *pflag.FlagSet) {
	d := DefaultDemo()
	fs.String("out-dir", d.OutDir, "output `directory` (empty: a new temporary directory)")
	fs.Duration("duration", d.Duration, "call length")
	fs.String("admin", d.Admin, "HTTP control API `address` (empty: off)")
}

func demoSpec() spec[Demo] {
	return spec[Demo]{
		command:  "demo",
		defaults: DefaultDemo,
		flags:    map[string]string{"out-dir": "out_dir", "duration": "duration", "admin": "admin"},
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
	p.listenAddr("admin", d.Admin, true)
	return p.err()
}
