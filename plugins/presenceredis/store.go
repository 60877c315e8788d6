// Package presenceredis is a presence.Store in Redis, so several access
// servers share one presence space: an endpoint logged in to one sees,
// and is notified about, the endpoints logged in to the others. It is the
// store behind the in-tree plugin plugins/cmd/presence-redis, and passes
// p2p/presence/storetest like presence.Memory.
//
// Layout, under a key prefix P (default "baton:presence:"):
//
//	P u:USER          hash: device -> STATUS|SINCE|ADDR (codec.go)
//	P l:USER/DEVICE   lease of a reachable device: its owner, with a TTL
//	P online          set of reachable "USER/DEVICE", for the sweep
//	P events          pub/sub channel: every change, in the order applied
//
// Leases are what make a crashed access server's endpoints go offline. The
// owner (one per access server; the host passes it to its plugin, see
// sdk.PresenceOwner) refreshes the leases of the devices it put online
// every LeaseTTL/3. When it stops (the access server died, and its plugin
// with it), the leases expire; every instance hears Redis's expired-key
// notification (and, in case notifications are off or were missed, sweeps
// the online set every SweepInterval) and marks the device offline, once,
// announcing it like any Delete.
//
// Offline entries are kept until someone deletes the user's hash.
package presenceredis

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/baton-voice/baton/p2p/presence"
)

// Defaults for zero Options fields.
const (
	DefaultPrefix   = "baton:presence:"
	DefaultLeaseTTL = 30 * time.Second
	DefaultMaxQueue = 1 << 16
	DefaultTimeout  = 5 * time.Second
)

// Options configures a Store.
type Options struct {
	// Addr is the Redis server, host:port. Ignored when Client is set.
	Addr string
	// Username, Password and DB select the Redis account and database.
	Username, Password string
	DB                 int
	// Client, when set, is used instead of dialling Addr; Close does not
	// close it.
	Client *redis.Client

	// Prefix starts every key; servers sharing presence use the same one.
	Prefix string
	// Owner names this store's leases. Servers sharing presence must use
	// different owners; empty means a random one.
	Owner string
	// LeaseTTL is how long a reachable device stays online after its owner
	// stopped refreshing it (default 30s).
	LeaseTTL time.Duration
	// SweepInterval is how often the online set is checked for expired
	// leases whose notification was missed (default LeaseTTL).
	SweepInterval time.Duration
	// KeyspaceEvents enables Redis's expired-key notifications (CONFIG SET
	// notify-keyspace-events) when they are off. Without them a crashed
	// server's endpoints go offline at the next sweep instead.
	KeyspaceEvents bool
	// MaxQueue is how many changes may wait for one watcher; a watcher
	// further behind is closed (it must Watch again and re-read).
	MaxQueue int
	// Timeout bounds each Redis operation made in the background (lease
	// refresh, reaping, subscribing).
	Timeout time.Duration

	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger
	// Now is the store's clock (nil: time.Now).
	Now func() time.Time
}

// Store is a presence.Store in Redis. Create it with Open.
type Store struct {
	opt     Options
	rdb     *redis.Client
	ownRDB  bool
	log     *slog.Logger
	chEvent string

	base   context.Context // cancelled by Close
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	watchers map[*watcher]struct{}
	// owned holds the last reachable entry this store put for each device
	// whose lease it holds: what the refresher keeps alive.
	owned map[string]presence.Entry

	wg sync.WaitGroup
}

var _ presence.Store = (*Store)(nil)

// Open connects to Redis, checks it answers, enables expired-key
// notifications if asked, and starts the lease refresher and the reaper.
func Open(ctx context.Context, opt Options) (*Store, error) {
	if opt.Prefix == "" {
		opt.Prefix = DefaultPrefix
	}
	if opt.LeaseTTL <= 0 {
		opt.LeaseTTL = DefaultLeaseTTL
	}
	if opt.LeaseTTL < 10*time.Millisecond {
		return nil, fmt.Errorf("presenceredis: lease TTL %v: want at least 10ms", opt.LeaseTTL)
	}
	if opt.SweepInterval <= 0 {
		opt.SweepInterval = opt.LeaseTTL
	}
	if opt.MaxQueue <= 0 {
		opt.MaxQueue = DefaultMaxQueue
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Owner == "" {
		opt.Owner = RandomOwner()
	}
	if strings.ContainsAny(opt.Owner, " \r\n") {
		return nil, fmt.Errorf("presenceredis: owner %q: no spaces or line breaks", opt.Owner)
	}
	s := &Store{
		opt:      opt,
		rdb:      opt.Client,
		log:      opt.Logger.With("component", "presenceredis"),
		chEvent:  opt.Prefix + "events",
		watchers: make(map[*watcher]struct{}),
		owned:    make(map[string]presence.Entry),
	}
	if s.rdb == nil {
		if opt.Addr == "" {
			return nil, errors.New("presenceredis: no Redis address")
		}
		s.rdb = redis.NewClient(&redis.Options{Addr: opt.Addr, Username: opt.Username, Password: opt.Password, DB: opt.DB})
		s.ownRDB = true
	}
	pctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	if err := s.rdb.Ping(pctx).Err(); err != nil {
		s.closeClient()
		return nil, fmt.Errorf("presenceredis: redis %s: %w", s.rdb.Options().Addr, err)
	}
	if opt.KeyspaceEvents {
		if err := enableExpiredEvents(pctx, s.rdb); err != nil {
			s.log.Warn("expired-key notifications unavailable; crashed servers' endpoints go offline at the next sweep",
				"error", err, "sweep_interval", opt.SweepInterval)
		}
	}
	s.base, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.wg.Add(2)
	go s.refresher()
	go s.reaper()
	return s, nil
}

// RandomOwner returns a fresh random lease owner.
func RandomOwner() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// enableExpiredEvents adds "Ex" (keyevent notifications for expired keys)
// to notify-keyspace-events, keeping what is already set.
func enableExpiredEvents(ctx context.Context, rdb *redis.Client) error {
	cur, err := rdb.ConfigGet(ctx, "notify-keyspace-events").Result()
	if err != nil {
		return err
	}
	v := cur["notify-keyspace-events"]
	if strings.Contains(v, "E") && (strings.Contains(v, "x") || strings.Contains(v, "A")) {
		return nil
	}
	nv := v
	for _, c := range "Ex" {
		if !strings.ContainsRune(nv, c) {
			nv += string(c)
		}
	}
	return rdb.ConfigSet(ctx, "notify-keyspace-events", nv).Err()
}

// Owner returns the name of this store's leases.
func (s *Store) Owner() string { return s.opt.Owner }

// Ping checks that Redis answers (the plugin's health check).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("presenceredis: redis %s: %w", s.rdb.Options().Addr, err)
	}
	return nil
}

func (s *Store) userKey(user string) string { return s.opt.Prefix + "u:" + user }
func (s *Store) leaseKey(user, device string) string {
	return s.opt.Prefix + "l:" + user + "/" + device
}
func (s *Store) keys(user, device string) []string {
	return []string{s.userKey(user), s.leaseKey(user, device), s.opt.Prefix + "online", s.chEvent}
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Put implements presence.Store. A reachable entry takes the device's
// lease for this store's owner, whoever held it.
func (s *Store) Put(ctx context.Context, e presence.Entry) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("presenceredis: put: %w", err)
	}
	if s.isClosed() {
		return fmt.Errorf("presenceredis: put %s/%s: %w", e.User, e.Device, presence.ErrClosed)
	}
	e.Since = e.Since.Round(0)
	if e.Since.IsZero() {
		e.Since = s.opt.Now().Round(0)
	}
	if !e.Status.Reachable() {
		e.SignalAddr = netip.AddrPort{}
	}
	if err := s.put(ctx, e); err != nil {
		return fmt.Errorf("presenceredis: put %s/%s: %w", e.User, e.Device, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, e presence.Entry) error {
	member := e.User + "/" + e.Device
	reach := "0"
	if e.Status.Reachable() {
		reach = "1"
	}
	// Record ownership before the write: a refresh racing it then at worst
	// re-puts the same entry.
	s.mu.Lock()
	if e.Status.Reachable() {
		s.owned[member] = e
	} else {
		delete(s.owned, member)
	}
	s.mu.Unlock()
	return putScript.Run(ctx, s.rdb, s.keys(e.User, e.Device),
		e.Device, encodeValue(e), member, encodeEvent(e), reach, s.opt.Owner, s.opt.LeaseTTL.Milliseconds()).Err()
}

// Delete implements presence.Store. A device whose live lease another
// owner holds (it logged in to another access server since) is left as it
// is: the server it is logged in to decides when it goes offline.
func (s *Store) Delete(ctx context.Context, user, device string) error {
	if s.isClosed() {
		return fmt.Errorf("presenceredis: delete %s/%s: %w", user, device, presence.ErrClosed)
	}
	member := user + "/" + device
	s.mu.Lock()
	delete(s.owned, member)
	s.mu.Unlock()
	off := presence.Entry{User: user, Device: device, Status: presence.StatusOffline, Since: s.opt.Now().Round(0)}
	r, err := deleteScript.Run(ctx, s.rdb, s.keys(user, device),
		device, encodeValue(off), member, encodeEvent(off), s.opt.Owner).Int()
	if err != nil {
		return fmt.Errorf("presenceredis: delete %s/%s: %w", user, device, err)
	}
	if r == 2 {
		s.log.Info("delete ignored: the device's lease belongs to another server", "user", user, "device", device)
	}
	return nil
}

// Get implements presence.Store.
func (s *Store) Get(ctx context.Context, user, device string) (presence.Entry, bool, error) {
	if s.isClosed() {
		return presence.Entry{}, false, fmt.Errorf("presenceredis: get %s/%s: %w", user, device, presence.ErrClosed)
	}
	v, err := s.rdb.HGet(ctx, s.userKey(user), device).Result()
	if errors.Is(err, redis.Nil) {
		return presence.Entry{}, false, nil
	}
	if err != nil {
		return presence.Entry{}, false, fmt.Errorf("presenceredis: get %s/%s: %w", user, device, err)
	}
	e, err := decodeValue(user, device, v)
	if err != nil {
		return presence.Entry{}, false, fmt.Errorf("presenceredis: get: %w", err)
	}
	return e, true, nil
}

// ListUser implements presence.Store.
func (s *Store) ListUser(ctx context.Context, user string) ([]presence.Entry, error) {
	if s.isClosed() {
		return nil, fmt.Errorf("presenceredis: list %s: %w", user, presence.ErrClosed)
	}
	m, err := s.rdb.HGetAll(ctx, s.userKey(user)).Result()
	if err != nil {
		return nil, fmt.Errorf("presenceredis: list %s: %w", user, err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	out := make([]presence.Entry, 0, len(m))
	for dev, v := range m {
		e, err := decodeValue(user, dev, v)
		if err != nil {
			return nil, fmt.Errorf("presenceredis: list: %w", err)
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b presence.Entry) int { return cmp.Compare(a.Device, b.Device) })
	return out, nil
}

// Close implements presence.Store. It stops refreshing this store's leases
// without taking its devices offline: they go offline when the leases
// expire, unless another store (a restarted plugin of the same owner) puts
// them again first.
func (s *Store) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		for w := range s.watchers {
			w.close()
		}
		s.watchers = nil
		if s.cancel != nil {
			s.cancel()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.closeClient()
	return nil
}

func (s *Store) closeClient() {
	if s.ownRDB {
		_ = s.rdb.Close()
		s.ownRDB = false
	}
}

// refresher extends this store's leases every LeaseTTL/3, and puts back an
// entry whose lease was lost (Redis restarted without data, or was
// unreachable longer than the TTL while the device stayed logged in).
func (s *Store) refresher() {
	defer s.wg.Done()
	t := time.NewTicker(s.opt.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-s.base.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		batch := make([]presence.Entry, 0, len(s.owned))
		for _, e := range s.owned {
			batch = append(batch, e)
		}
		s.mu.Unlock()
		for len(batch) > 0 {
			n := min(len(batch), 512)
			s.refresh(batch[:n])
			batch = batch[n:]
		}
	}
}

func (s *Store) refresh(batch []presence.Entry) {
	ctx, cancel := context.WithTimeout(s.base, s.opt.Timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	ttl := s.opt.LeaseTTL.Milliseconds()
	for i, e := range batch {
		cmds[i] = refreshScript.Eval(ctx, pipe, s.keys(e.User, e.Device), s.opt.Owner, ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, redis.Nil) {
		s.log.Warn("lease refresh failed", "error", err, "leases", len(batch))
	}
	for i, c := range cmds {
		r, err := c.Int()
		if err != nil {
			continue
		}
		e := batch[i]
		member := e.User + "/" + e.Device
		switch r {
		case 0:
			s.mu.Lock()
			cur, still := s.owned[member]
			s.mu.Unlock()
			if !still || !cur.Since.Equal(e.Since) || cur.Status != e.Status {
				continue // changed meanwhile; the change wrote the lease
			}
			s.log.Warn("lease lost while the device is logged in; putting it back", "user", e.User, "device", e.Device)
			if err := s.put(ctx, e); err != nil {
				s.log.Warn("put back failed", "user", e.User, "device", e.Device, "error", err)
			}
		case 2:
			s.mu.Lock()
			if cur, ok := s.owned[member]; ok && cur.Since.Equal(e.Since) {
				delete(s.owned, member)
			}
			s.mu.Unlock()
			s.log.Info("device's lease taken by another server", "user", e.User, "device", e.Device)
		}
	}
}

// reaper takes offline the devices whose lease expired: on Redis's
// expired-key notification, and by sweeping the online set every
// SweepInterval (and at start) for whatever a notification missed.
func (s *Store) reaper() {
	defer s.wg.Done()
	expired := make(chan string, 256)
	s.wg.Add(1)
	go s.listenExpired(expired)
	s.sweep()
	t := time.NewTicker(s.opt.SweepInterval)
	defer t.Stop()
	leasePrefix := s.opt.Prefix + "l:"
	for {
		select {
		case <-s.base.Done():
			return
		case <-t.C:
			s.sweep()
		case key := <-expired:
			member, ok := strings.CutPrefix(key, leasePrefix)
			if !ok {
				continue
			}
			s.reap(member)
		}
	}
}

// listenExpired subscribes to expired-key events until Close,
// resubscribing (and sweeping) after a dropped connection.
func (s *Store) listenExpired(out chan<- string) {
	defer s.wg.Done()
	ch := fmt.Sprintf("__keyevent@%d__:expired", s.rdb.Options().DB)
	for s.base.Err() == nil {
		ps := s.rdb.Subscribe(s.base, ch)
		stop := context.AfterFunc(s.base, func() { _ = ps.Close() })
		for {
			msg, err := ps.ReceiveMessage(s.base)
			if err != nil {
				break
			}
			select {
			case out <- msg.Payload:
			case <-s.base.Done():
			}
		}
		stop()
		_ = ps.Close()
		select {
		case <-s.base.Done():
			return
		case <-time.After(time.Second):
		}
		s.sweep()
	}
}

// sweep reaps every member of the online set whose lease is gone.
func (s *Store) sweep() {
	ctx, cancel := context.WithTimeout(s.base, s.opt.Timeout)
	defer cancel()
	iter := s.rdb.SScan(ctx, s.opt.Prefix+"online", 0, "", 512).Iterator()
	var members []string
	for iter.Next(ctx) {
		members = append(members, iter.Val())
	}
	if err := iter.Err(); err != nil {
		if s.base.Err() == nil {
			s.log.Warn("sweep failed", "error", err)
		}
		return
	}
	for _, m := range members {
		if s.base.Err() != nil {
			return
		}
		s.reap(m)
	}
}

// reap takes member ("user/device") offline if its lease is gone.
func (s *Store) reap(member string) {
	user, device, ok := strings.Cut(member, "/")
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(s.base, s.opt.Timeout)
	defer cancel()
	off := presence.Entry{User: user, Device: device, Status: presence.StatusOffline, Since: s.opt.Now().Round(0)}
	r, err := reapScript.Run(ctx, s.rdb, s.keys(user, device), device, encodeValue(off), member, encodeEvent(off)).Int()
	if err != nil {
		if s.base.Err() == nil {
			s.log.Warn("reap failed", "user", user, "device", device, "error", err)
		}
		return
	}
	if r == 1 {
		s.log.Info("lease expired; device offline", "user", user, "device", device)
	}
}

// watcher is one Watch: its subscription, the queue between the
// subscription's reader and the channel, and the goroutines moving it.
type watcher struct {
	ps    *redis.PubSub
	stop  chan struct{} // closed by close
	once  sync.Once
	mu    sync.Mutex
	queue []presence.Entry
	ended bool          // the reader stopped: deliver the queue, then close
	wake  chan struct{} // capacity 1
	out   chan presence.Entry
}

func (w *watcher) close() {
	w.once.Do(func() {
		close(w.stop)
		_ = w.ps.Close()
	})
}

// pingEvery is how long a subscription may be silent before the reader
// pings Redis; a second silent interval means the connection is dead.
const pingEvery = 5 * time.Second

// Watch implements presence.Store: one subscription to the event channel
// per watcher. It returns once Redis has confirmed the subscription, so
// every change applied after Watch returns is delivered. A watcher whose
// subscription drops, or that falls MaxQueue changes behind, is closed.
func (s *Store) Watch(ctx context.Context) (<-chan presence.Entry, error) {
	if s.isClosed() {
		return nil, fmt.Errorf("presenceredis: watch: %w", presence.ErrClosed)
	}
	ps := s.rdb.Subscribe(ctx, s.chEvent)
	sctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	msg, err := ps.Receive(sctx)
	cancel()
	if err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("presenceredis: watch: subscribe: %w", err)
	}
	if _, ok := msg.(*redis.Subscription); !ok {
		_ = ps.Close()
		return nil, fmt.Errorf("presenceredis: watch: subscribe: unexpected reply %T", msg)
	}
	w := &watcher{ps: ps, stop: make(chan struct{}), wake: make(chan struct{}, 1), out: make(chan presence.Entry)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ps.Close()
		return nil, fmt.Errorf("presenceredis: watch: %w", presence.ErrClosed)
	}
	s.watchers[w] = struct{}{}
	s.wg.Add(2)
	s.mu.Unlock()
	go s.read(w)
	go s.forward(ctx, w)
	return w.out, nil
}

// read moves the subscription's messages to the watcher's queue. It never
// skips one: a message it cannot decode, a dropped connection or an
// overflowing queue ends the watcher (go-redis would otherwise reconnect
// and resubscribe, silently losing what was published in between).
func (s *Store) read(w *watcher) {
	defer s.wg.Done()
	end := func(why string, err error) {
		select {
		case <-w.stop:
		default:
			if why != "" {
				s.log.Warn("watch ended", "reason", why, "error", err)
			}
		}
		w.mu.Lock()
		w.ended = true
		w.mu.Unlock()
		w.signal()
		_ = w.ps.Close()
	}
	silent := false
	for {
		msg, err := w.ps.ReceiveTimeout(context.Background(), pingEvery)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !silent {
				silent = true
				if err := w.ps.Ping(context.Background()); err == nil {
					continue
				}
			}
			end("subscription lost", err)
			return
		}
		silent = false
		m, ok := msg.(*redis.Message)
		if !ok {
			continue // pong, subscription confirmations
		}
		e, err := decodeEvent(m.Payload)
		if err != nil {
			end("undecodable event", err)
			return
		}
		w.mu.Lock()
		w.queue = append(w.queue, e)
		over := len(w.queue) > s.opt.MaxQueue
		w.mu.Unlock()
		if over {
			end("watcher too far behind", fmt.Errorf("more than %d changes queued", s.opt.MaxQueue))
			return
		}
		w.signal()
	}
}

func (w *watcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// forward delivers the queue to the watcher's channel until ctx ends, the
// store closes or the reader ended and the queue is drained.
func (s *Store) forward(ctx context.Context, w *watcher) {
	defer s.wg.Done()
	defer close(w.out)
	defer func() {
		w.close()
		s.mu.Lock()
		if s.watchers != nil {
			delete(s.watchers, w)
		}
		s.mu.Unlock()
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
			case <-w.stop:
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
		case <-w.stop:
			return
		}
	}
}
