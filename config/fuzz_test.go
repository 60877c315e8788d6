package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzLoadYAML feeds arbitrary bytes as the config file of every command.
// Invariants: no panic; every error wraps one of the package's sentinels;
// a config that loads also validates, and loading is deterministic.
func FuzzLoadYAML(f *testing.F) {
	for _, name := range []string{"access.yaml", "phone.yaml", "demo.yaml", "ctl.yaml", "user.yaml"} {
		b, err := os.ReadFile(filepath.Join(examplesDir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzOne(t, accessSpec(), data)
		fuzzOne(t, phoneSpec(), data)
		fuzzOne(t, demoSpec(), data)
		fuzzOne(t, ctlSpec(), data)
		fuzzOne(t, userSpec(), data)
	})
}

func fuzzOne[T any](t *testing.T, s spec[T], data []byte) {
	t.Helper()
	src := Source{File: "fuzz.yaml", Env: []string{}}
	got, err := loadBytes(s, src, data)
	if err != nil {
		if !errors.Is(err, ErrParse) && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("%s: error wraps no sentinel: %v", s.command, err)
		}
		return
	}
	if err := s.validate(got); err != nil {
		t.Fatalf("%s: loaded config does not validate: %v", s.command, err)
	}
	again, err := loadBytes(s, src, data)
	if err != nil || !reflect.DeepEqual(got, again) {
		t.Fatalf("%s: second load differs: %+v, %v; first %+v", s.command, again, err, got)
	}
}
