package config

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	kmaps "github.com/knadh/koanf/maps"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// EnvPrefix starts every environment variable the loaders read.
const EnvPrefix = "BATON_"

// Source says where a loader finds its layers above the defaults.
type Source struct {
	// File is the YAML file to read (the --config flag); "" means none.
	File string
	// Flags is the parsed flag set of the command, usually cobra's
	// cmd.Flags(), which also holds the root's persistent flags. Only
	// flags the user changed are applied; nil means none.
	Flags *pflag.FlagSet
	// Env lists variables as os.Environ does ("KEY=value"). nil means
	// os.Environ(); tests pass a non-nil (possibly empty) slice so they
	// neither read nor depend on the process environment.
	Env []string
}

// GlobalFlags registers the flags every command shares: --config,
// --log-level and --log-format. Register them once, on the root command's
// persistent flags; the loaders read the log flags from Source.Flags and
// ignore --config (the caller passes its value as Source.File).
func GlobalFlags(fs *pflag.FlagSet) {
	d := DefaultLog()
	fs.String("config", "", "YAML config `file` (see docs/examples)")
	fs.String("log-level", d.Level.String(), "log level: debug, info, warn or error")
	fs.String("log-format", d.Format.String(), "log format: text or json")
}

// globalFlagKey maps the shared flags to their keys.
func globalFlagKey(name string) (string, bool) {
	switch name {
	case "log-level":
		return "log.level", true
	case "log-format":
		return "log.format", true
	}
	return "", false
}

// spec describes one command's configuration for the generic loader.
type spec[T any] struct {
	command  string            // "phone", for messages
	defaults func() T          // the lowest layer, and the source of known keys
	flags    map[string]string // flag name -> key, besides globalFlagKey's
	validate func(T) error
}

func load[T any](s spec[T], src Source) (T, error) {
	var file []byte
	if src.File != "" {
		b, err := os.ReadFile(src.File)
		if err != nil {
			var zero T
			return zero, fmt.Errorf("config: read config file: %w", err)
		}
		file = b
	}
	return loadBytes(s, src, file)
}

// loadBytes is load with the file's content given; src.File only names it.
func loadBytes[T any](s spec[T], src Source, file []byte) (T, error) {
	var zero T
	k := koanf.New(".")
	if err := k.Load(structs.Provider(s.defaults(), "koanf"), nil); err != nil {
		return zero, fmt.Errorf("config: defaults: %w", err)
	}
	ks := newKeySet(k.Keys())

	var errs []error
	// merge decodes one layer on its own before merging it, so a type error
	// names the file or variable it came from, not just the key.
	merge := func(l *koanf.Koanf, where func(string) string) {
		if _, err := decode[T](l, where); err != nil {
			errs = append(errs, err)
			return
		}
		if err := k.Merge(l); err != nil {
			errs = append(errs, fmt.Errorf("config: %w", err))
		}
	}

	if src.File != "" {
		flat, err := parseFile(src.File, file, ks)
		errs = append(errs, err)
		if flat != nil {
			l := koanf.New(".")
			_ = l.Load(confmap.Provider(flat, "."), nil) // cannot fail
			merge(l, func(string) string { return src.File })
		}
	}

	l, vars, err := envLayer(s.command, src.Env, ks)
	errs = append(errs, err)
	merge(l, func(key string) string { return "environment variable " + vars[key] })

	if src.Flags != nil {
		l, names := flagLayer(src.Flags, s.flags)
		merge(l, func(key string) string { return "flag --" + names[key] })
	}

	if err := errors.Join(errs...); err != nil {
		return zero, err
	}
	out, err := decode[T](k, func(string) string { return "" })
	if err != nil {
		return zero, err
	}
	if err := s.validate(out); err != nil {
		return zero, err
	}
	return out, nil
}

// parseFile parses YAML into a flat map of known keys. Keys may be nested
// (signal: {listen: ...}) or dotted (signal.listen: ...); a key set both
// ways is an error rather than a silent pick.
func parseFile(name string, b []byte, ks keySet) (map[string]any, error) {
	m, err := yaml.Parser().Unmarshal(b)
	if err != nil {
		return nil, &keyError{msg: fmt.Sprintf("config: %s: %v", name, err), err: ErrParse}
	}
	kmaps.IntfaceKeysToStrings(m)
	flat := map[string]any{}
	var errs []error
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			v, path := m[k], prefix+k
			sub, isMap := v.(map[string]any)
			switch {
			case v == nil:
				// `key:` with no value, or a section whose keys are all
				// commented out: not set here.
			case ks.leaves[path] && isMap:
				errs = append(errs, &keyError{
					msg: fmt.Sprintf("config: %s: %s: want a value, not a mapping", name, path),
					err: ErrInvalid,
				})
			case ks.leaves[path]:
				if _, dup := flat[path]; dup {
					errs = append(errs, &keyError{
						msg: fmt.Sprintf("config: %s: %s: set twice", name, path),
						err: ErrInvalid,
					})
				}
				flat[path] = v
			case ks.sections[path] && isMap:
				walk(path+".", sub)
			default:
				errs = append(errs, ks.unknown(name, path))
			}
		}
	}
	walk("", m)
	return flat, errors.Join(errs...)
}

// envLayer reads BATON_* variables. It returns the layer, the variable
// behind each key (for messages) and an error for each variable that is
// not a key of this command.
func envLayer(command string, environ []string, ks keySet) (*koanf.Koanf, map[string]string, error) {
	vars := map[string]string{}
	var errs []error
	opt := env.Opt{
		Prefix: EnvPrefix,
		TransformFunc: func(name, value string) (string, any) {
			key := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), "__", ".")
			if !ks.leaves[key] {
				errs = append(errs, ks.unknown(fmt.Sprintf("environment variable %s (baton %s)", name, command), key))
				return "", nil
			}
			vars[key] = name
			return key, value
		},
	}
	if environ != nil {
		opt.EnvironFunc = func() []string { return environ }
	}
	l := koanf.New(".")
	_ = l.Load(env.Provider(".", opt), nil) // the env provider cannot fail
	// The environment is unordered; sort so messages are stable.
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return l, vars, errors.Join(errs...)
}

// flagLayer reads the flags the user set, mapped to keys by name. Flags
// that are not ours (--config, --help, another command's) are skipped, and
// posflag without a koanf instance skips every flag left at its default,
// so a registered default never hides the file or environment.
func flagLayer(fs *pflag.FlagSet, names map[string]string) (*koanf.Koanf, map[string]string) {
	flags := map[string]string{}
	l := koanf.New(".")
	_ = l.Load(posflag.ProviderWithFlag(fs, ".", nil, func(f *pflag.Flag) (string, any) {
		key, ok := names[f.Name]
		if !ok {
			key, ok = globalFlagKey(f.Name)
		}
		if !ok {
			return "", nil
		}
		flags[key] = f.Name
		return key, posflag.FlagVal(fs, f)
	}), nil) // the posflag provider cannot fail
	return l, flags
}
