package config

import "github.com/spf13/pflag"

// User configures `baton user` and `baton buddy`, which edit the access
// server's users database directly.
type User struct {
	Log Log `koanf:"log"`
	// DataDir is the access server's data directory.
	DataDir string `koanf:"data_dir"`
}

// DefaultUser returns the defaults, matching DefaultAccess's DataDir.
func DefaultUser() User { return User{Log: DefaultLog(), DataDir: DefaultAccess().DataDir} }

// UserFlags registers the flags of `baton user` and `baton buddy`.
func UserFlags(fs *pflag.FlagSet) {
	fs.String("data-dir", DefaultUser().DataDir, "access server data `directory`")
}

func userSpec() spec[User] {
	return spec[User]{
		command:  "user",
		defaults: DefaultUser,
		flags:    map[string]string{"data-dir": "data_dir"},
		validate: User.Validate,
	}
}

// LoadUser loads and validates the configuration of `baton user`/`buddy`.
func LoadUser(src Source) (User, error) { return load(userSpec(), src) }

// Validate reports every invalid field, each error wrapping ErrInvalid.
func (u User) Validate() error {
	var p problems
	u.Log.validate(&p)
	p.required("data_dir", u.DataDir)
	return p.err()
}
