package config

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	kmaps "github.com/knadh/koanf/maps"
	"github.com/knadh/koanf/parsers/yaml"
)

const examplesDir = "../docs/examples"

// TestExamples loads each documented example with its command's loader, so
// an example that drifts from the code fails here.
func TestExamples(t *testing.T) {
	t.Parallel()
	src := func(name string) Source {
		return Source{File: filepath.Join(examplesDir, name), Env: []string{}}
	}
	t.Run("access", func(t *testing.T) {
		t.Parallel()
		c, err := LoadAccess(src("access.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if c.Listen != "127.0.0.1:7000" || c.Presence.Timeout != 30*time.Second || len(c.ServerNames) != 2 {
			t.Errorf("got %+v", c)
		}
		checkAllKeys(t, "access.yaml", DefaultAccess())
	})
	t.Run("phone", func(t *testing.T) {
		t.Parallel()
		c, err := LoadPhone(src("phone.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if c.User != "alice" || c.Device != "laptop" || c.Ptime != 20*time.Millisecond || !slices.Equal(c.Codecs, []string{"PCMU", "PCMA"}) {
			t.Errorf("got %+v", c)
		}
		checkAllKeys(t, "phone.yaml", DefaultPhone())
	})
	t.Run("gateway", func(t *testing.T) {
		t.Parallel()
		c, err := LoadGateway(src("gateway.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if c.SIP.UDP != "127.0.0.1:5060" || c.SIP.Realm != "baton" || len(c.Accounts) != 1 || c.Accounts[0].Device != "alice/desk" || c.Media.Timeout != 30*time.Second {
			t.Errorf("got %+v", c)
		}
		checkAllKeys(t, "gateway.yaml", DefaultGateway())
	})
	t.Run("demo", func(t *testing.T) {
		t.Parallel()
		c, err := LoadDemo(src("demo.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if c.Duration != 3*time.Second || c.Tone.Callee != 660 {
			t.Errorf("got %+v", c)
		}
		checkAllKeys(t, "demo.yaml", DefaultDemo())
	})
	t.Run("ctl", func(t *testing.T) {
		t.Parallel()
		c, err := LoadCtl(src("ctl.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if c.Admin != "127.0.0.1:7081" || c.Timeout != 5*time.Second {
			t.Errorf("got %+v", c)
		}
		checkAllKeys(t, "ctl.yaml", DefaultCtl())
	})
	t.Run("user", func(t *testing.T) {
		t.Parallel()
		c, err := LoadUser(src("user.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if c.DataDir != "./baton-data" {
			t.Errorf("got %+v", c)
		}
		checkAllKeys(t, "user.yaml", DefaultUser())
	})
}

// checkAllKeys asserts an example sets every key the command has, so a new
// key cannot go undocumented.
func checkAllKeys(t *testing.T, name string, defaults any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(examplesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	m, err := yaml.Parser().Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	flat, _ := kmaps.Flatten(m, nil, ".")
	for k := range keysOf(t, defaults).leaves {
		if _, ok := flat[k]; !ok {
			t.Errorf("%s does not document key %q", name, k)
		}
	}
}
