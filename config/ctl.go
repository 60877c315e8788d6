package config

import (
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Ctl configures `baton ctl`, the client of a process's control API.
type Ctl struct {
	Log Log `koanf:"log"`
	// Admin is the control API address of the process to talk to.
	Admin string `koanf:"admin"`
	// Timeout bounds each request (not the /v1/events stream).
	Timeout time.Duration `koanf:"timeout"`
	// Endpoint names one endpoint of a process that serves many (a
	// gateway's device, "alice/desk"); "" talks to the process's own.
	Endpoint string `koanf:"endpoint"`
}

// DefaultCtl returns the defaults.
func DefaultCtl() Ctl {
	return Ctl{Log: DefaultLog(), Admin: "127.0.0.1:7081", Timeout: 5 * time.Second}
}

// CtlFlags registers the flags of `baton ctl` with their defaults.
func CtlFlags(fs *pflag.FlagSet) {
	d := DefaultCtl()
	fs.String("admin", d.Admin, "control API `address` to connect to")
	fs.Duration("timeout", d.Timeout, "request timeout")
	fs.String("endpoint", d.Endpoint, "`USER/DEVICE` of one endpoint of a process that runs many (a gateway's device)")
}

func ctlSpec() spec[Ctl] {
	return spec[Ctl]{
		command:  "ctl",
		defaults: DefaultCtl,
		flags:    map[string]string{"admin": "admin", "timeout": "timeout", "endpoint": "endpoint"},
		validate: Ctl.Validate,
	}
}

// LoadCtl loads and validates the configuration of `baton ctl`.
func LoadCtl(src Source) (Ctl, error) { return load(ctlSpec(), src) }

// Validate reports every invalid field, each error wrapping ErrInvalid.
func (c Ctl) Validate() error {
	var p problems
	c.Log.validate(&p)
	p.dialAddr("admin", c.Admin)
	if c.Endpoint != "" {
		p.target("endpoint", c.Endpoint)
		if !strings.Contains(c.Endpoint, "/") {
			p.add("endpoint", c.Endpoint, "want USER/DEVICE")
		}
	}
	if c.Timeout <= 0 {
		p.add("timeout", c.Timeout, "must be positive")
	}
	return p.err()
}
