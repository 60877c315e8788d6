package plugins

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Config is one plugin process the host runs and supervises. The zero
// value of every duration means its default (DefaultConfig).
type Config struct {
	// Name labels the plugin in logs and errors; default: the file name of
	// Path.
	Name string
	// Path is the plugin binary.
	Path string
	// Args are passed to the binary.
	Args []string
	// Env is added to the plugin's environment (KEY=VALUE). The plugin gets
	// the host's environment too.
	Env []string
	// SHA256 is the expected hex sha256 of the binary (go-plugin's
	// SecureConfig). Empty: the host hashes the binary when it is loaded
	// and pins that hash, so a binary replaced underneath a running host is
	// refused on restart.
	SHA256 string

	// StartTimeout bounds the handshake and the first Describe.
	StartTimeout time.Duration
	// HealthInterval is how often the host checks the plugin; HealthTimeout
	// is the deadline of one check; after HealthFailures failures in a row
	// the host kills and restarts the plugin.
	HealthInterval time.Duration
	HealthTimeout  time.Duration
	HealthFailures int
	// RestartMin and RestartMax bound the restart backoff: the first
	// restart waits RestartMin, each failed or short-lived one doubles it.
	RestartMin time.Duration
	RestartMax time.Duration

	// Logger receives the host's messages about the plugin and the
	// plugin's own log lines; nil discards them.
	Logger *slog.Logger

	// shared is a codec plugin's shared memory region (CodecClient's),
	// passed to each process started as protocol.SharedMemoryFD.
	shared *os.File
}

// Defaults.
const (
	DefaultStartTimeout   = 10 * time.Second
	DefaultHealthInterval = 2 * time.Second
	DefaultHealthTimeout  = 500 * time.Millisecond
	DefaultHealthFailures = 2
	DefaultRestartMin     = 100 * time.Millisecond
	DefaultRestartMax     = 30 * time.Second
)

// withDefaults validates c and fills in defaults. It resolves Path and pins
// the checksum.
func (c Config) withDefaults() (Config, error) {
	if c.Path == "" {
		return c, fmt.Errorf("plugins: %w: path is empty", ErrConfig)
	}
	abs, err := filepath.Abs(c.Path)
	if err != nil {
		return c, fmt.Errorf("plugins: %w: path %q: %v", ErrConfig, c.Path, err)
	}
	c.Path = abs
	if c.Name == "" {
		c.Name = filepath.Base(c.Path)
	}
	st, err := os.Stat(c.Path)
	if err != nil {
		return c, fmt.Errorf("plugins: %s: %w", c.Name, err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return c, fmt.Errorf("plugins: %s: %w: %s is not an executable file", c.Name, ErrConfig, c.Path)
	}
	sum, err := FileSHA256(c.Path)
	if err != nil {
		return c, fmt.Errorf("plugins: %s: %w", c.Name, err)
	}
	if c.SHA256 == "" {
		c.SHA256 = sum
	} else if c.SHA256 != sum {
		return c, fmt.Errorf("plugins: %s: %w: %s has sha256 %s, configured %s", c.Name, ErrChecksum, c.Path, sum, c.SHA256)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.StartTimeout, DefaultStartTimeout)
	def(&c.HealthInterval, DefaultHealthInterval)
	def(&c.HealthTimeout, DefaultHealthTimeout)
	def(&c.RestartMin, DefaultRestartMin)
	def(&c.RestartMax, DefaultRestartMax)
	if c.HealthFailures <= 0 {
		c.HealthFailures = DefaultHealthFailures
	}
	if c.RestartMax < c.RestartMin {
		c.RestartMax = c.RestartMin
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = c.Logger.With("component", "plugins", "plugin", c.Name)
	return c, nil
}

// FileSHA256 returns the hex sha256 of the file at path, the form
// Config.SHA256 takes (`sha256sum` prints the same).
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
