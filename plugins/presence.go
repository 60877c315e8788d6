package plugins

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/baton-voice/baton/p2p/presence"
	"github.com/baton-voice/baton/plugins/internal/pb/presencev1"
	"github.com/baton-voice/baton/plugins/internal/protocol"
	"github.com/baton-voice/baton/plugins/presenceredis"
	"github.com/baton-voice/baton/plugins/sdk"
)

// PresenceConfig is a presence backend plugin.
type PresenceConfig struct {
	Config
	// CallTimeout is the deadline of one store call (default 2 s). A hung
	// plugin makes logins fail after it, not hang.
	CallTimeout time.Duration
	// Owner names, to the backend, the presence this host writes (passed
	// to the plugin as sdk.PresenceOwnerEnv); hosts sharing a backend need
	// different owners. Empty: a random name, kept across plugin restarts.
	Owner string
}

// DefaultPresenceTimeout is the default deadline of one presence call.
const DefaultPresenceTimeout = 2 * time.Second

// PresenceClient is a presence.Store served by a supervised plugin process.
//
// While the plugin is down (dead, hung, restarting) every call fails at
// once with an error wrapping ErrUnavailable, and every watcher's channel
// is closed (the presence.Store way of saying "watch again and re-read").
// When the supervisor has started a new plugin, the client replays into it
// what this host wrote and the old plugin may have held only in memory:
// the last entry of every device it put online and not deleted since, and
// the deletes that failed while the plugin was down. A backend whose state
// outlives its plugin process (Redis) sees the same entries again; one that
// forgot everything (an in-memory plugin) gets this host's devices back.
type PresenceClient struct {
	sup     *Supervisor
	timeout time.Duration

	// replay is held shared by Put and Delete (their bookkeeping and RPC)
	// and exclusively while replaying into a new plugin, so a replayed
	// entry can never land after a newer one.
	replay sync.RWMutex

	mu       sync.Mutex
	closed   bool
	owned    map[devKey]ownedEntry
	watchers map[*remoteWatcher]struct{}
	replayed uint64 // plugin generation whose replay is done

	resume chan struct{} // capacity 1: "a plugin went down"
	done   chan struct{}
	wg     sync.WaitGroup
}

type devKey struct{ user, device string }

// ownedEntry is what this host last wrote for a device: an entry it put
// online, or a delete that has not reached the backend.
type ownedEntry struct {
	e             presence.Entry
	pendingDelete bool
}

var _ presence.Store = (*PresenceClient)(nil)

// LoadPresence starts the presence plugin cfg describes and returns it as
// a presence.Store (for access.Config.Store). The first start must
// succeed; Close stops the plugin.
func LoadPresence(ctx context.Context, cfg PresenceConfig) (*PresenceClient, error) {
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultPresenceTimeout
	}
	if cfg.Owner == "" {
		cfg.Owner = presenceredis.RandomOwner()
	}
	cfg.Env = append(append([]string(nil), cfg.Env...), sdk.PresenceOwnerEnv+"="+cfg.Owner)
	c := &PresenceClient{
		timeout:  cfg.CallTimeout,
		owned:    make(map[devKey]ownedEntry),
		watchers: make(map[*remoteWatcher]struct{}),
		resume:   make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	sup, err := supervise(ctx, cfg.Config, KindPresence, c.pluginDown)
	if err != nil {
		return nil, err
	}
	c.sup = sup
	sup.mu.Lock()
	c.replayed = sup.gen
	sup.mu.Unlock()
	c.wg.Add(1)
	go c.resumer()
	return c, nil
}

// Supervisor returns the client's supervisor (stats, pid).
func (c *PresenceClient) Supervisor() *Supervisor { return c.sup }

// pluginDown runs on the supervisor's goroutine when instance gen is gone:
// its watchers are closed and the resumer is told to replay into the next.
func (c *PresenceClient) pluginDown(gen uint64) {
	c.mu.Lock()
	var ws []*remoteWatcher
	for w := range c.watchers {
		if w.gen == gen {
			ws = append(ws, w)
		}
	}
	c.mu.Unlock()
	for _, w := range ws {
		w.cancel()
	}
	select {
	case c.resume <- struct{}{}:
	default:
	}
}

// resumer replays into each new plugin instance once it is up.
func (c *PresenceClient) resumer() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case <-c.resume:
		}
		t := time.NewTicker(20 * time.Millisecond)
		for {
			inst, err := c.sup.current()
			if errors.Is(err, ErrClosed) {
				t.Stop()
				return
			}
			if err == nil {
				c.replayInto(inst)
				break
			}
			select {
			case <-c.done:
				t.Stop()
				return
			case <-t.C:
			}
		}
		t.Stop()
	}
}

// replayInto sends inst what this host wrote (see PresenceClient). On
// failure the instance is going down too; the next one is replayed again.
func (c *PresenceClient) replayInto(inst *instance) {
	c.replay.Lock()
	defer c.replay.Unlock()
	c.mu.Lock()
	if c.replayed >= inst.gen {
		c.mu.Unlock()
		return
	}
	todo := make(map[devKey]ownedEntry, len(c.owned))
	for k, o := range c.owned {
		todo[k] = o
	}
	c.mu.Unlock()
	pc := presencev1.NewPresenceClient(inst.conn)
	puts, dels := 0, 0
	for k, o := range todo {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		var err error
		if o.pendingDelete {
			_, err = pc.Delete(ctx, &presencev1.DeleteRequest{User: k.user, Device: k.device})
			dels++
		} else {
			_, err = pc.Put(ctx, &presencev1.PutRequest{Entry: protocol.EntryToPB(o.e)})
			puts++
		}
		cancel()
		if err != nil {
			c.sup.log.Warn("presence replay into the restarted plugin failed", "error", err)
			c.sup.Check()
			return
		}
		if o.pendingDelete {
			c.mu.Lock()
			if cur, ok := c.owned[k]; ok && cur.pendingDelete {
				delete(c.owned, k)
			}
			c.mu.Unlock()
		}
	}
	c.mu.Lock()
	c.replayed = inst.gen
	c.mu.Unlock()
	c.sup.log.Info("presence replayed into the restarted plugin", "puts", puts, "deletes", dels)
}

// conn returns the current instance, or why there is none.
func (c *PresenceClient) conn(op string) (*instance, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("plugins: presence %s: %w", op, presence.ErrClosed)
	}
	inst, err := c.sup.current()
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return nil, fmt.Errorf("plugins: presence %s: %w", op, presence.ErrClosed)
		}
		return nil, fmt.Errorf("plugins: presence %s: %w", op, err)
	}
	return inst, nil
}

// rpcError maps a plugin's error back to the presence sentinels: invalid
// entries are ErrInvalidEntry, anything else means the plugin could not
// serve the call (ErrUnavailable), and the supervisor is asked to check it.
func (c *PresenceClient) rpcError(op string, err error) error {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.InvalidArgument:
		return fmt.Errorf("plugins: presence %s: %w: %s", op, presence.ErrInvalidEntry, st.Message())
	case codes.Canceled:
		return fmt.Errorf("plugins: presence %s: %w", op, context.Canceled)
	case codes.Unavailable, codes.DeadlineExceeded:
		c.sup.Check()
	}
	return fmt.Errorf("plugins: presence %s: %w: %s", op, ErrUnavailable, shortErr(err))
}

// Put implements presence.Store.
func (c *PresenceClient) Put(ctx context.Context, e presence.Entry) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("plugins: presence put: %w", err)
	}
	inst, err := c.conn("put")
	if err != nil {
		return err
	}
	c.replay.RLock()
	defer c.replay.RUnlock()
	k := devKey{e.User, e.Device}
	c.mu.Lock()
	if e.Status.Reachable() {
		c.owned[k] = ownedEntry{e: e}
	} else {
		delete(c.owned, k)
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if _, err := presencev1.NewPresenceClient(inst.conn).Put(ctx, &presencev1.PutRequest{Entry: protocol.EntryToPB(e)}); err != nil {
		return c.rpcError("put "+e.User+"/"+e.Device, err)
	}
	return nil
}

// Delete implements presence.Store. A delete that fails because the
// plugin is down is remembered and replayed into the restarted plugin (and
// the error returned), so the device does not stay online for good.
func (c *PresenceClient) Delete(ctx context.Context, user, device string) error {
	k := devKey{user, device}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("plugins: presence delete %s/%s: %w", user, device, presence.ErrClosed)
	}
	c.mu.Unlock()
	c.replay.RLock()
	defer c.replay.RUnlock()
	c.mu.Lock()
	c.owned[k] = ownedEntry{pendingDelete: true}
	c.mu.Unlock()
	inst, err := c.conn("delete")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if _, err := presencev1.NewPresenceClient(inst.conn).Delete(ctx, &presencev1.DeleteRequest{User: user, Device: device}); err != nil {
		return c.rpcError("delete "+user+"/"+device, err)
	}
	c.mu.Lock()
	if cur, ok := c.owned[k]; ok && cur.pendingDelete {
		delete(c.owned, k)
	}
	c.mu.Unlock()
	return nil
}

// Get implements presence.Store.
func (c *PresenceClient) Get(ctx context.Context, user, device string) (presence.Entry, bool, error) {
	inst, err := c.conn("get")
	if err != nil {
		return presence.Entry{}, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	r, err := presencev1.NewPresenceClient(inst.conn).Get(ctx, &presencev1.GetRequest{User: user, Device: device})
	if err != nil {
		return presence.Entry{}, false, c.rpcError("get "+user+"/"+device, err)
	}
	if !r.GetFound() {
		return presence.Entry{}, false, nil
	}
	e, err := protocol.EntryFromPB(r.GetEntry())
	if err != nil {
		return presence.Entry{}, false, fmt.Errorf("plugins: presence get: %w", err)
	}
	return e, true, nil
}

// ListUser implements presence.Store.
func (c *PresenceClient) ListUser(ctx context.Context, user string) ([]presence.Entry, error) {
	inst, err := c.conn("list")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	r, err := presencev1.NewPresenceClient(inst.conn).ListUser(ctx, &presencev1.ListUserRequest{User: user})
	if err != nil {
		return nil, c.rpcError("list "+user, err)
	}
	if len(r.GetEntries()) == 0 {
		return nil, nil
	}
	out := make([]presence.Entry, 0, len(r.GetEntries()))
	for _, p := range r.GetEntries() {
		e, err := protocol.EntryFromPB(p)
		if err != nil {
			return nil, fmt.Errorf("plugins: presence list: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}

// remoteWatcher is one Watch: a server stream from one plugin instance,
// read into an unbounded queue (so the plugin's stream never waits on the
// host's consumer) and forwarded to the channel.
type remoteWatcher struct {
	gen    uint64
	cancel context.CancelFunc

	mu    sync.Mutex
	queue []presence.Entry
	ended bool
	wake  chan struct{} // capacity 1
	out   chan presence.Entry
}

func (w *remoteWatcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Watch implements presence.Store. It returns once the plugin's store is
// watching (the stream's ready message). The channel is closed when the
// plugin goes down, its store ends the watch, ctx ends or the client is
// closed.
func (c *PresenceClient) Watch(ctx context.Context) (<-chan presence.Entry, error) {
	inst, err := c.conn("watch")
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	stream, err := presencev1.NewPresenceClient(inst.conn).Watch(wctx, &presencev1.WatchRequest{})
	if err != nil {
		cancel()
		return nil, c.rpcError("watch", err)
	}
	// The ready message must come within the call deadline: a hung plugin
	// must not hang Watch.
	readyTimer := time.AfterFunc(c.timeout, cancel)
	first, err := stream.Recv()
	stopped := readyTimer.Stop()
	if err != nil {
		cancel()
		if !stopped && ctx.Err() == nil {
			c.sup.Check()
			return nil, fmt.Errorf("plugins: presence watch: %w: no ready message within %v", ErrUnavailable, c.timeout)
		}
		return nil, c.rpcError("watch", err)
	}
	if !first.GetReady() {
		cancel()
		return nil, fmt.Errorf("plugins: presence watch: %w: first message is not ready", ErrUnavailable)
	}
	w := &remoteWatcher{gen: inst.gen, cancel: cancel, wake: make(chan struct{}, 1), out: make(chan presence.Entry)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cancel()
		return nil, fmt.Errorf("plugins: presence watch: %w", presence.ErrClosed)
	}
	c.watchers[w] = struct{}{}
	c.wg.Add(2)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		for {
			ev, err := stream.Recv()
			if err != nil {
				if wctx.Err() == nil {
					c.sup.log.Warn("presence watch ended", "error", shortErr(err))
				}
				break
			}
			e, err := protocol.EntryFromPB(ev.GetEntry())
			if err != nil {
				c.sup.log.Error("presence watch: bad entry from the plugin; ending the watch", "error", err)
				break
			}
			w.mu.Lock()
			w.queue = append(w.queue, e)
			w.mu.Unlock()
			w.signal()
		}
		w.mu.Lock()
		w.ended = true
		w.mu.Unlock()
		w.signal()
	}()
	go c.forward(wctx, w)
	return w.out, nil
}

func (c *PresenceClient) forward(ctx context.Context, w *remoteWatcher) {
	defer c.wg.Done()
	defer close(w.out)
	defer func() {
		w.cancel()
		c.mu.Lock()
		delete(c.watchers, w)
		c.mu.Unlock()
	}()
	for {
		w.mu.Lock()
		batch, ended := w.queue, w.ended
		w.queue = nil
		w.mu.Unlock()
		for _, e := range batch {
			select {
			case w.out <- e:
			case <-ctx.Done():
				return
			}
		}
		if len(batch) > 0 {
			continue
		}
		if ended {
			return
		}
		select {
		case <-w.wake:
		case <-ctx.Done():
			return
		}
	}
}

// Close implements presence.Store: it closes every watcher and stops the
// plugin. It is idempotent.
func (c *PresenceClient) Close() error {
	c.mu.Lock()
	first := !c.closed
	c.closed = true
	var ws []*remoteWatcher
	for w := range c.watchers {
		ws = append(ws, w)
	}
	c.mu.Unlock()
	for _, w := range ws {
		w.cancel()
	}
	if first {
		close(c.done)
	}
	err := c.sup.Close()
	c.wg.Wait()
	return err
}
