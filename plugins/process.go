package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/baton-voice/baton/plugins/internal/pb/pluginv1"
	"github.com/baton-voice/baton/plugins/internal/protocol"
)

// Kind is what a plugin implements: policy, presence or codec.
type Kind = protocol.Kind

// Plugin kinds.
const (
	KindUnknown  = protocol.KindUnknown
	KindPolicy   = protocol.KindPolicy
	KindPresence = protocol.KindPresence
	KindCodec    = protocol.KindCodec
)

// ParseKind parses "policy", "presence" or "codec".
func ParseKind(s string) Kind { return protocol.ParseKind(s) }

// Versions lists the protocol versions the host speaks for k, newest
// first.
func Versions(k Kind) []int { return protocol.Versions(k) }

// Description is what a running plugin says about itself (Describe).
type Description struct {
	Kind            Kind
	ProtocolVersion int
	Name            string
	Version         string
	Capabilities    []string
	SDKVersion      string
}

// instance is one running plugin process.
type instance struct {
	client  *plugin.Client
	cmd     *exec.Cmd
	conn    *grpc.ClientConn
	info    pluginv1.InfoClient
	desc    Description
	sockDir string
	started time.Time
	gen     uint64

	exitOnce sync.Once
	exited   chan struct{} // closed once the process is known to be gone
	stopWait chan struct{} // closed to end the exit watcher
	wg       sync.WaitGroup
}

// tail keeps the last bytes a plugin wrote to stderr, for error messages
// about a plugin that failed to start.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 2048

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailMax {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailMax:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// launch starts the plugin at cfg.Path, completes the handshake for kind
// (KindUnknown accepts any kind) and checks its Describe answer.
func launch(ctx context.Context, cfg Config, kind Kind) (*instance, error) {
	sum, err := hex.DecodeString(cfg.SHA256)
	if err != nil {
		return nil, fmt.Errorf("plugins: %s: %w: sha256 %q: %v", cfg.Name, ErrConfig, cfg.SHA256, err)
	}
	// The plugin's unix socket lives in a directory the host owns and
	// removes, so a plugin killed with SIGKILL leaks no socket file.
	sockDir, err := os.MkdirTemp("", "baton-plugin-")
	if err != nil {
		return nil, fmt.Errorf("plugins: %s: socket dir: %w", cfg.Name, err)
	}
	cmd := exec.Command(cfg.Path, cfg.Args...)
	// SkipHostEnv below: the host's environment is added here, before the
	// socket dir, so a PLUGIN_* variable in the host's environment cannot
	// override what the host sets.
	// The shared memory region, if any, is always named by the host: one
	// inherited from the host's own environment would name nothing.
	shm := protocol.EnvSharedMemoryFD + "="
	if cfg.shared != nil {
		cmd.ExtraFiles = []*os.File{cfg.shared}
		shm += strconv.Itoa(protocol.SharedMemoryFD)
	}
	cmd.Env = append(append(os.Environ(), cfg.Env...), shm, plugin.EnvUnixSocketDir+"="+sockDir)
	setParentDeath(cmd)

	stderr := &tail{}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  protocol.Handshake,
		VersionedPlugins: protocol.HostPlugins(kind),
		Cmd:              cmd,
		SkipHostEnv:      true,
		SecureConfig:     &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()},
		AutoMTLS:         true,
		StartTimeout:     cfg.StartTimeout,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  protocol.DialOptions(),
		Logger:           newHCLog(cfg.Logger, hclog.Debug),
		Stderr:           stderr,
	})
	inst := &instance{client: client, cmd: cmd, sockDir: sockDir, exited: make(chan struct{}), stopWait: make(chan struct{})}
	fail := func(err error) (*instance, error) {
		inst.kill(false)
		return nil, err
	}
	start := time.Now()
	if _, err := client.Start(); err != nil {
		return fail(classifyStart(cfg, err, stderr.String()))
	}
	rpc, err := client.Client()
	if err != nil {
		return fail(fmt.Errorf("plugins: %s: connect: %w", cfg.Name, err))
	}
	raw, err := rpc.Dispense(firstKind(client, kind).String())
	if err != nil {
		return fail(fmt.Errorf("plugins: %s: dispense: %w", cfg.Name, err))
	}
	conn, ok := raw.(*grpc.ClientConn)
	if !ok {
		return fail(fmt.Errorf("plugins: %s: dispense returned %T", cfg.Name, raw))
	}
	inst.conn = conn
	inst.info = pluginv1.NewInfoClient(conn)

	dctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout-time.Since(start))
	defer cancel()
	d, err := inst.info.Describe(dctx, &pluginv1.DescribeRequest{})
	if err != nil {
		return fail(fmt.Errorf("plugins: %s: describe: %w", cfg.Name, err))
	}
	inst.desc = Description{
		Kind: protocol.ParseKind(d.GetKind()), ProtocolVersion: int(d.GetProtocolVersion()),
		Name: d.GetName(), Version: d.GetVersion(), Capabilities: d.GetCapabilities(), SDKVersion: d.GetSdkVersion(),
	}
	if kind != KindUnknown && inst.desc.Kind != kind {
		return fail(fmt.Errorf("plugins: %s: %w: it serves %q, configured as %s", cfg.Name, ErrWrongKind, d.GetKind(), kind))
	}
	if inst.desc.Kind == KindUnknown {
		return fail(fmt.Errorf("plugins: %s: %w: it serves unknown kind %q", cfg.Name, ErrWrongKind, d.GetKind()))
	}
	if nv := client.NegotiatedVersion(); inst.desc.ProtocolVersion != nv {
		return fail(fmt.Errorf("plugins: %s: %w: negotiated version %d, Describe says %d", cfg.Name, ErrVersion, nv, inst.desc.ProtocolVersion))
	}
	inst.started = time.Now()
	inst.wg.Add(1)
	go inst.watchExit()
	return inst, nil
}

// firstKind is the kind to dispense: the configured one, or for
// KindUnknown any kind offered at the negotiated version (every kind's
// client is the same gRPC connection; Describe says which it really is).
func firstKind(c *plugin.Client, k Kind) Kind {
	if k != KindUnknown {
		return k
	}
	set := protocol.HostPlugins(KindUnknown)[c.NegotiatedVersion()]
	for _, kk := range []Kind{KindPolicy, KindPresence, KindCodec} {
		if _, ok := set[kk.String()]; ok {
			return kk
		}
	}
	return KindPolicy
}

// exitPoll is how often an instance checks whether its process exited.
// go-plugin learns it from its own Wait; polling its flag is the only way
// to see it without racing that Wait.
const exitPoll = 20 * time.Millisecond

func (i *instance) watchExit() {
	defer i.wg.Done()
	t := time.NewTicker(exitPoll)
	defer t.Stop()
	for {
		select {
		case <-i.stopWait:
			return
		case <-t.C:
			if i.client.Exited() {
				i.exitOnce.Do(func() { close(i.exited) })
				return
			}
		}
	}
}

// pid is the plugin's process id, or 0.
func (i *instance) pid() int {
	if i.cmd.Process == nil {
		return 0
	}
	return i.cmd.Process.Pid
}

// kill stops the process and removes its socket directory. graceful asks
// the plugin to shut down first (go-plugin's Kill, which waits up to 2 s);
// otherwise, for a plugin that is dead or hung, it is SIGKILLed at once.
func (i *instance) kill(graceful bool) {
	if !graceful && i.cmd.Process != nil {
		_ = i.cmd.Process.Kill()
	}
	done := make(chan struct{})
	go func() {
		i.client.Kill()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		// go-plugin's graceful path has no deadline of its own on a
		// stopped process; make sure it ends.
		if i.cmd.Process != nil {
			_ = i.cmd.Process.Kill()
		}
		<-done
	}
	select {
	case <-i.stopWait:
	default:
		close(i.stopWait)
	}
	i.wg.Wait()
	i.exitOnce.Do(func() { close(i.exited) })
	_ = os.RemoveAll(i.sockDir)
}

// classifyStart turns go-plugin's start errors (plain strings) into the
// host's sentinels with a message a person can act on.
func classifyStart(cfg Config, err error, stderr string) error {
	msg := err.Error()
	withStderr := func(s string) string {
		if stderr == "" {
			return s
		}
		return s + "; its stderr: " + stderr
	}
	name := cfg.Name
	switch {
	case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
		return fmt.Errorf("plugins: %s: %w: %s changed since it was configured or loaded", name, ErrChecksum, cfg.Path)
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return fmt.Errorf("plugins: %s: %w: no handshake within %v", name, ErrStartTimeout, cfg.StartTimeout)
	case strings.Contains(msg, "incompatible API version"), strings.Contains(msg, "incompatible core API version"):
		return fmt.Errorf("plugins: %s: %w: %s (rebuild the plugin against this Baton's SDK)", name, ErrVersion, firstLine(msg))
	case strings.Contains(msg, "Unrecognized remote plugin message: "):
		line := firstLine(strings.TrimPrefix(msg[strings.Index(msg, "Unrecognized remote plugin message: "):], "Unrecognized remote plugin message: "))
		if line == "" || strings.Contains(msg, "Failed to read any lines") {
			return fmt.Errorf("plugins: %s: %w: %s exited before its handshake%s", name, ErrNotPlugin, cfg.Path, withStderr(""))
		}
		return fmt.Errorf("plugins: %s: %w: first stdout line %q is not a go-plugin handshake (plugins must log to stderr, never stdout)%s",
			name, ErrStdoutBeforeHandshake, truncate(line, 120), withStderr(""))
	case strings.Contains(msg, "plugin exited before we could connect"):
		return fmt.Errorf("plugins: %s: %w: %s exited before its handshake%s", name, ErrNotPlugin, cfg.Path, withStderr(""))
	}
	return fmt.Errorf("plugins: %s: start: %s%s", name, firstLine(msg), withStderr(""))
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimSpace(s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
