package config

import (
	"testing"

	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
)

// keysOf returns the keys a defaults struct defines, as the loader sees them.
func keysOf(t *testing.T, defaults any) keySet {
	t.Helper()
	k := koanf.New(".")
	if err := k.Load(structs.Provider(defaults, "koanf"), nil); err != nil {
		t.Fatal(err)
	}
	return newKeySet(k.Keys())
}
