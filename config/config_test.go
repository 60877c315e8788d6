package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// phoneRequired sets the keys DefaultPhone leaves empty, so a test can focus
// on the key it is about.
const phoneRequired = "ca: ca.pem\nuser: alice\ndevice: laptop\npassword_file: pw\n"

// writeFile writes content to a new file in a test-owned directory.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "phone.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// parsedFlags returns a flag set with the global and the given command's
// flags registered, parsed from args, as cobra would hand it over.
func parsedFlags(t *testing.T, register func(*pflag.FlagSet), args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	GlobalFlags(fs)
	fs.BoolP("help", "h", false, "help")
	register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return fs
}

// wantErr asserts err wraps sentinel and its text contains every part.
func wantErr(t *testing.T, err, sentinel error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one wrapping %v containing %q", sentinel, parts)
	}
	if !errors.Is(err, sentinel) {
		t.Errorf("error %q does not wrap %v", err, sentinel)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	const (
		fileListen = "signal:\n  listen: 127.0.0.1:5061\n"
		envListen  = "BATON_SIGNAL__LISTEN=127.0.0.1:5062"
	)
	listen := func(p Phone) any { return p.Signal.Listen }
	tests := []struct {
		name string
		file string   // appended to phoneRequired
		env  []string // nil here means none, not os.Environ
		args []string // nil: no flag set at all
		get  func(Phone) any
		want any
	}{
		{name: "default", get: listen, want: "127.0.0.1:0"},
		{name: "file over default", file: fileListen, get: listen, want: "127.0.0.1:5061"},
		{name: "env over file", file: fileListen, env: []string{envListen}, get: listen, want: "127.0.0.1:5062"},
		{
			name: "flag over env", file: fileListen, env: []string{envListen},
			args: []string{"--signal-listen", "127.0.0.1:5063"}, get: listen, want: "127.0.0.1:5063",
		},
		{name: "unset flag does not override file", file: fileListen, args: []string{}, get: listen, want: "127.0.0.1:5061"},
		{
			name: "unset flag does not override env", env: []string{envListen},
			args: []string{"--user", "bob"}, get: listen, want: "127.0.0.1:5062",
		},
		{
			name: "flag set to its default still overrides", file: fileListen,
			args: []string{"--signal-listen=127.0.0.1:0"}, get: listen, want: "127.0.0.1:0",
		},
		{name: "env without nesting", env: []string{"BATON_PASSWORD_FILE=/run/pw"}, get: func(p Phone) any { return p.PasswordFile }, want: "/run/pw"},
		{name: "dashed flag", args: []string{"--password-file", "/run/pw2"}, get: func(p Phone) any { return p.PasswordFile }, want: "/run/pw2"},
		{name: "media-ip flag", args: []string{"--media-ip", "127.0.0.5"}, get: func(p Phone) any { return p.Media.IP }, want: "127.0.0.5"},
		{name: "play flag", args: []string{"--play", "in.wav"}, get: func(p Phone) any { return p.Audio.Play }, want: "in.wav"},
		{name: "tone flag", args: []string{"--tone", "880"}, get: func(p Phone) any { return p.Audio.Tone }, want: 880},
		{name: "max-calls flag", args: []string{"--max-calls", "3"}, get: func(p Phone) any { return p.MaxCalls }, want: 3},
		{name: "preauth from env", env: []string{"BATON_SIGNAL__MAX_PREAUTH=64"}, get: func(p Phone) any { return p.Signal.MaxPreAuth }, want: 64},
		{name: "auto-answer flag", args: []string{"--auto-answer"}, get: func(p Phone) any { return p.AutoAnswer }, want: true},
		{name: "global log-format flag", file: "log:\n  format: text\n", args: []string{"--log-format", "json"}, get: func(p Phone) any { return p.Log.Format }, want: LogFormatJSON},
		{name: "log level from env", env: []string{"BATON_LOG__LEVEL=debug"}, get: func(p Phone) any { return p.Log.Level }, want: LogLevelDebug},
		{name: "config and help flags ignored", args: []string{"--config", "elsewhere.yaml", "--help"}, get: listen, want: "127.0.0.1:0"},
		{name: "other variables ignored", env: []string{"PATH=/bin", "baton_user=lower", "HOME=/root"}, get: func(p Phone) any { return p.User }, want: "alice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := Source{File: writeFile(t, phoneRequired+tc.file), Env: tc.env}
			if src.Env == nil {
				src.Env = []string{}
			}
			if tc.args != nil {
				src.Flags = parsedFlags(t, PhoneFlags, tc.args...)
			}
			got, err := LoadPhone(src)
			if err != nil {
				t.Fatal(err)
			}
			if g := tc.get(got); g != tc.want {
				t.Errorf("got %v (%T), want %v (%T)", g, g, tc.want, tc.want)
			}
		})
	}
}

func TestNoFile(t *testing.T) {
	t.Parallel()
	got, err := LoadCtl(Source{Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if want := DefaultCtl(); got != want {
		t.Errorf("got %+v, want the defaults %+v", got, want)
	}
}

func TestNullMeansUnset(t *testing.T) {
	t.Parallel()
	// `access:` and a section with every key commented out are null in YAML;
	// they must leave the lower layer's value, not blank it.
	file := phoneRequired + "access:\nsignal:\n  # listen: 127.0.0.1:5061\n"
	got, err := LoadPhone(Source{File: writeFile(t, file), Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Access != "127.0.0.1:7000" || got.Signal.Listen != "127.0.0.1:0" {
		t.Errorf("got access %q signal.listen %q, want the defaults", got.Access, got.Signal.Listen)
	}
}

func TestDottedKeys(t *testing.T) {
	t.Parallel()
	got, err := LoadPhone(Source{File: writeFile(t, phoneRequired+"signal.listen: 127.0.0.1:5061\n"), Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Signal.Listen != "127.0.0.1:5061" {
		t.Errorf("signal.listen = %q, want 127.0.0.1:5061", got.Signal.Listen)
	}
	_, err = LoadPhone(Source{
		File: writeFile(t, phoneRequired+"signal.listen: 127.0.0.1:5061\nsignal:\n  listen: 127.0.0.1:5062\n"),
		Env:  []string{},
	})
	wantErr(t, err, ErrInvalid, "signal.listen: set twice")
}

func TestUnknownFileKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		file     string
		sentinel error
		parts    []string
	}{
		{"typo in nested key", "signal:\n  lisen: 127.0.0.1:5061\n", ErrUnknownKey, []string{`unknown key "signal.lisen"`, `did you mean "signal.listen"?`}},
		{"typo in dotted key", "signal.lisen: x\n", ErrUnknownKey, []string{`unknown key "signal.lisen"`, `"signal.listen"`}},
		{"typo in section", "sigal:\n  listen: x\n", ErrUnknownKey, []string{`unknown key "sigal"`, `did you mean "signal"?`}},
		{"underscore for nesting", "signal_listen: x\n", ErrUnknownKey, []string{`unknown key "signal_listen"`, `"signal.listen"`}},
		{"another command's key", "data_dir: x\n", ErrUnknownKey, []string{`unknown key "data_dir"`}},
		{"nothing close", "zzzzzzzzzz: 1\n", ErrUnknownKey, []string{`unknown key "zzzzzzzzzz"`}},
		{"section given a value", "signal: 5\n", ErrInvalid, []string{`"signal" is a section`, "signal.listen"}},
		{"value given a mapping", "ptime:\n  ms: 20\n", ErrInvalid, []string{"ptime: want a value, not a mapping"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, phoneRequired+tc.file)
			_, err := LoadPhone(Source{File: path, Env: []string{}})
			wantErr(t, err, tc.sentinel, append(tc.parts, "config: "+path+": ")...)
		})
	}
	t.Run("no suggestion when nothing is close", func(t *testing.T) {
		t.Parallel()
		_, err := LoadPhone(Source{File: writeFile(t, phoneRequired+"zzzzzzzzzz: 1\n"), Env: []string{}})
		if err == nil || strings.Contains(err.Error(), "did you mean") {
			t.Errorf("got %v, want an error without a suggestion", err)
		}
	})
	t.Run("every unknown key reported", func(t *testing.T) {
		t.Parallel()
		_, err := LoadPhone(Source{File: writeFile(t, phoneRequired+"foo: 1\nbar: 2\n"), Env: []string{}})
		wantErr(t, err, ErrUnknownKey, `"foo"`, `"bar"`)
	})
}

func TestUnknownEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		env      string
		sentinel error
		parts    []string
	}{
		{"typo", "BATON_SIGNAL__LISEN=x", ErrUnknownKey, []string{"BATON_SIGNAL__LISEN", `unknown key "signal.lisen"`, `"signal.listen"`}},
		{"single underscore for nesting", "BATON_SIGNAL_LISTEN=x", ErrUnknownKey, []string{"BATON_SIGNAL_LISTEN", `"signal.listen"`}},
		{"another command's key", "BATON_DATA_DIR=/x", ErrUnknownKey, []string{"BATON_DATA_DIR", "baton phone", `unknown key "data_dir"`}},
		{"section", "BATON_SIGNAL=x", ErrInvalid, []string{"BATON_SIGNAL", `"signal" is a section`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadPhone(Source{File: writeFile(t, phoneRequired), Env: []string{tc.env}})
			wantErr(t, err, tc.sentinel, tc.parts...)
		})
	}
	t.Run("known for one command, unknown for another", func(t *testing.T) {
		t.Parallel()
		env := []string{"BATON_DATA_DIR=/var/lib/baton"}
		u, err := LoadUser(Source{Env: env})
		if err != nil || u.DataDir != "/var/lib/baton" {
			t.Fatalf("LoadUser = %+v, %v; want data_dir from the environment", u, err)
		}
		_, err = LoadCtl(Source{Env: env})
		wantErr(t, err, ErrUnknownKey, "BATON_DATA_DIR")
	})
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		file  string
		env   string
		parts []string
	}{
		{name: "duration not a duration", file: "ptime: abc\n", parts: []string{"ptime", `"abc"`, "want a duration"}},
		{name: "duration without unit", file: "ptime: 20\n", parts: []string{"ptime", "20", "with a unit"}},
		{name: "int from word", file: "audio:\n  tone: abc\n", parts: []string{"audio.tone", `"abc": want an integer`}},
		{name: "int from float", file: "audio:\n  tone: 1.5\n", parts: []string{"audio.tone", "want an integer"}},
		{name: "bool from yes", file: "auto_answer: yes\n", parts: []string{"auto_answer", `"yes": want true or false`}},
		{name: "string from list", file: "admin: [a, b]\n", parts: []string{"admin", "want a string"}},
		{name: "list from mapping entry", file: "codecs:\n  - {a: 1}\n", parts: []string{"codecs[0]", "want a string"}},
		{name: "enum", file: "log:\n  level: verbose\n", parts: []string{"log.level", `"verbose"`, "debug, info, warn or error"}},
		{name: "every type error reported", file: "ptime: abc\naudio:\n  tone: zz\n", parts: []string{"ptime: \"abc\"", "audio.tone: \"zz\""}},
		{name: "env int", env: "BATON_AUDIO__TONE=loud", parts: []string{"environment variable BATON_AUDIO__TONE", "audio.tone", `"loud"`}},
		{name: "env duration", env: "BATON_PTIME=20", parts: []string{"environment variable BATON_PTIME", "ptime", `"20"`}},
		{name: "env bool", env: "BATON_MEDIA__SRTP=nope", parts: []string{"BATON_MEDIA__SRTP", "media.srtp"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, phoneRequired+tc.file)
			src := Source{File: path, Env: []string{}}
			if tc.env != "" {
				src.Env = []string{tc.env}
			} else {
				tc.parts = append(tc.parts, "config: "+path+": ")
			}
			_, err := LoadPhone(src)
			wantErr(t, err, ErrInvalid, tc.parts...)
		})
	}
}

func TestValuesParsed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file string
		env  string
		args []string
		get  func(Phone) any
		want any
	}{
		{name: "codecs flag comma list", args: []string{"--codecs", "PCMA,PCMU"}, get: codecs, want: "PCMA PCMU"},
		{name: "codecs flag repeated", args: []string{"--codecs", "PCMA", "--codecs", "PCMU"}, get: codecs, want: "PCMA PCMU"},
		{name: "codecs env comma list", env: "BATON_CODECS=PCMA, PCMU", get: codecs, want: "PCMA PCMU"},
		{name: "codecs yaml sequence", file: "codecs: [PCMA]\n", get: codecs, want: "PCMA"},
		{name: "codecs yaml string", file: "codecs: PCMA,PCMU\n", get: codecs, want: "PCMA PCMU"},
		{name: "duration yaml", file: "ptime: 30ms\n", get: func(p Phone) any { return p.Ptime }, want: 30 * time.Millisecond},
		{name: "duration env", env: "BATON_JITTER__DELAY=100ms", get: func(p Phone) any { return p.Jitter.Delay }, want: 100 * time.Millisecond},
		{name: "bare zero duration", file: "keepalive: 0\n", get: func(p Phone) any { return p.Keepalive }, want: time.Duration(0)},
		{name: "keepalive", file: "keepalive: 15s\n", get: func(p Phone) any { return p.Keepalive }, want: 15 * time.Second},
		{name: "int env", env: "BATON_AUDIO__TONE=440", get: func(p Phone) any { return p.Audio.Tone }, want: 440},
		{name: "quoted int yaml", file: "audio:\n  tone: \"440\"\n", get: func(p Phone) any { return p.Audio.Tone }, want: 440},
		{name: "bool env", env: "BATON_MEDIA__SRTP=false", get: func(p Phone) any { return p.Media.SRTP }, want: false},
		{name: "numeric string", file: "audio:\n  record: 1234\n", get: func(p Phone) any { return p.Audio.Record }, want: "1234"},
		{name: "enum any case", file: "log:\n  format: JSON\n", get: func(p Phone) any { return p.Log.Format }, want: LogFormatJSON},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := Source{File: writeFile(t, phoneRequired+tc.file), Env: []string{}}
			if tc.env != "" {
				src.Env = []string{tc.env}
			}
			if tc.args != nil {
				src.Flags = parsedFlags(t, PhoneFlags, tc.args...)
			}
			got, err := LoadPhone(src)
			if err != nil {
				t.Fatal(err)
			}
			if g := tc.get(got); g != tc.want {
				t.Errorf("got %v, want %v", g, tc.want)
			}
		})
	}
}

func codecs(p Phone) any { return strings.Join(p.Codecs, " ") }

func TestFlagsOfEachCommand(t *testing.T) {
	t.Parallel()
	t.Run("access", func(t *testing.T) {
		t.Parallel()
		got, err := LoadAccess(Source{Env: []string{}, Flags: parsedFlags(t, AccessFlags,
			"--listen", "127.0.0.1:7100", "--data-dir", "/d", "--admin", "127.0.0.1:7101")})
		if err != nil {
			t.Fatal(err)
		}
		if got.Listen != "127.0.0.1:7100" || got.DataDir != "/d" || got.Admin != "127.0.0.1:7101" {
			t.Errorf("got %+v", got)
		}
	})
	t.Run("demo", func(t *testing.T) {
		t.Parallel()
		got, err := LoadDemo(Source{Env: []string{}, Flags: parsedFlags(t, DemoFlags,
			"--out-dir", "/o", "--duration", "5s", "--admin", "127.0.0.1:0")})
		if err != nil {
			t.Fatal(err)
		}
		if got.OutDir != "/o" || got.Duration != 5*time.Second || got.Admin != "127.0.0.1:0" {
			t.Errorf("got %+v", got)
		}
	})
	t.Run("ctl", func(t *testing.T) {
		t.Parallel()
		got, err := LoadCtl(Source{Env: []string{}, Flags: parsedFlags(t, CtlFlags,
			"--admin", "127.0.0.1:9", "--timeout", "1s", "--log-level", "warn", "--endpoint", "alice/desk")})
		if err != nil {
			t.Fatal(err)
		}
		if want := (Ctl{Log{LogLevelWarn, LogFormatText}, "127.0.0.1:9", time.Second, "alice/desk"}); got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
	t.Run("user", func(t *testing.T) {
		t.Parallel()
		got, err := LoadUser(Source{Env: []string{}, Flags: parsedFlags(t, UserFlags, "--data-dir", "/u")})
		if err != nil {
			t.Fatal(err)
		}
		if got.DataDir != "/u" {
			t.Errorf("got %+v", got)
		}
	})
}

// TestFlagKeysExist guards the flag -> key tables: a key renamed in a
// struct but not in its table would silently drop the flag.
func TestFlagKeysExist(t *testing.T) {
	t.Parallel()
	check := func(name string, flags map[string]string, register func(*pflag.FlagSet), defaults any) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ks := keysOf(t, defaults)
			fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
			register(fs)
			var registered []string
			fs.VisitAll(func(f *pflag.Flag) { registered = append(registered, f.Name) })
			for flag, key := range flags {
				if !ks.leaves[key] {
					t.Errorf("flag --%s maps to %q, not a key", flag, key)
				}
				if !slices.Contains(registered, flag) {
					t.Errorf("flag --%s mapped but not registered", flag)
				}
			}
			for _, f := range registered {
				if _, ok := flags[f]; !ok {
					t.Errorf("flag --%s registered but not mapped to a key", f)
				}
			}
		})
	}
	check("access", accessSpec().flags, AccessFlags, DefaultAccess())
	check("phone", phoneSpec().flags, PhoneFlags, DefaultPhone())
	check("demo", demoSpec().flags, DemoFlags, DefaultDemo())
	check("ctl", ctlSpec().flags, CtlFlags, DefaultCtl())
	check("user", userSpec().flags, UserFlags, DefaultUser())
}

func TestFileErrors(t *testing.T) {
	t.Parallel()
	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "nope.yaml")
		_, err := LoadCtl(Source{File: path, Env: []string{}})
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
			t.Errorf("got %v, want a not-exist error naming %s", err, path)
		}
	})
	for _, tc := range []struct{ name, file string }{
		{"unclosed flow sequence", "admin: [\n"},
		{"bad indentation", "log:\n  level: info\n format: json\n"},
		{"top level is a list", "- admin\n"},
		{"top level is a scalar", "hello\n"},
		{"tab indentation", "log:\n\tlevel: info\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, tc.file)
			_, err := LoadCtl(Source{File: path, Env: []string{}})
			wantErr(t, err, ErrParse, "config: "+path+": ")
		})
	}
	t.Run("empty file is no keys", func(t *testing.T) {
		t.Parallel()
		if _, err := LoadCtl(Source{File: writeFile(t, ""), Env: []string{}}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	ks := newKeySet([]string{"signal.listen", "media.ip", "codecs", "user"})
	for _, tc := range []struct{ in, want string }{
		{"signal.lisen", "signal.listen"},
		{"codec", "codecs"},
		{"usr", "user"},
		{"medi", "media"},
		{"x", ""},
		{"completely.different", ""},
		{strings.Repeat("a", 1000), ""},
	} {
		if got := ks.suggest(tc.in); got != tc.want {
			t.Errorf("suggest(%.20q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestFlagTypeError checks that a value from a flag is attributed to it
// (here a caller registered --tone as a string instead of using PhoneFlags).
func TestFlagTypeError(t *testing.T) {
	t.Parallel()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.String("tone", "", "")
	if err := fs.Parse([]string{"--tone", "loud"}); err != nil {
		t.Fatal(err)
	}
	_, err := LoadPhone(Source{File: writeFile(t, phoneRequired), Flags: fs, Env: []string{}})
	wantErr(t, err, ErrInvalid, "config: flag --tone: audio.tone: \"loud\": want an integer")
}

// TestProcessEnvironment checks that a nil Source.Env reads os.Environ. It
// cannot run in parallel: it sets a process environment variable.
func TestProcessEnvironment(t *testing.T) {
	t.Setenv("BATON_TIMEOUT", "7s")
	got, err := LoadCtl(Source{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Timeout != 7*time.Second {
		t.Errorf("timeout = %v, want 7s from BATON_TIMEOUT", got.Timeout)
	}
}
