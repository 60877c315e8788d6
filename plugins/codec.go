package plugins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/plugins/internal/pb/codecv1"
	"github.com/baton-voice/baton/plugins/internal/protocol"
)

// CodecConfig is a codec plugin.
type CodecConfig struct {
	Config
	// FrameTimeout bounds one Encode, Decode or Conceal: a frame not
	// answered in time is an error for that frame only (the media engine
	// sends nothing, or conceals) and the call goes on. Default 20 ms,
	// one packet time.
	FrameTimeout time.Duration
	// Linger is how long the batcher waits after the first frame of a
	// batch for more calls' frames before sending it (group commit);
	// DefaultLinger when zero, none when negative. Frames that arrive while
	// batches are on the wire wait for the next one either way, so batches
	// grow with the load; lingering fills them at moderate load too, which
	// halves the CPU per frame at 1,000 calls (docs/benchmarks.md).
	Linger time.Duration
	// OnOutage, when set, is told each time the codec stream to the plugin
	// ends while the client runs (the plugin died, hung, or its restart
	// failed): the frames of every call fail until a restarted plugin is
	// up, which may take longer than a call can go without audio. It is
	// the fallback trigger of issue 10 §3 (docs/plugins.md): a phone
	// switches its calls to G.711 with a media update. It runs on its own
	// goroutine, one call at a time; outages while it runs coalesce into
	// one more call.
	OnOutage func(Outage)
	// NoSharedMemory sends every batch through the gRPC stream even to a
	// plugin that can take it in shared memory (codec.proto, Region): the
	// path older plugins get, for comparison.
	NoSharedMemory bool

	// sharedSize is the shared memory region's size; DefaultSharedMemory
	// when zero (tests make it small to overflow it).
	sharedSize int
}

// DefaultSharedMemory is the size of a codec plugin's shared memory
// region: batchWindow slots, each a request half and an answer half of
// 4 MiB, room for about 8,000 calls' G.711 frames per batch (a batch that
// does not fit goes through the stream). Pages are only backed once
// touched: a 1,000-call batch uses about 0.5 MB of each half.
const DefaultSharedMemory = batchWindow * 8 << 20

// Outage describes a codec plugin's stream ending.
type Outage struct {
	Plugin string   // the plugin's name
	Codecs []string // the codecs it served, now unavailable
	At     time.Time
	Err    error // why the stream ended
}

// batchWindow is how many batches may be on their way to the plugin
// and back at once. Two let the host pack and unpack one batch while the
// plugin works on the other (one would make host and plugin take turns,
// using one core of two); frames that arrive while both are out share the
// next batch, so the batch size follows the load.
const batchWindow = 2

// DefaultLinger is CodecConfig.Linger's default: 1 ms, so a call's
// encode + decode wait at most about 2 ms more per 20 ms frame.
const DefaultLinger = time.Millisecond

// DefaultFrameTimeout is CodecConfig.FrameTimeout's default.
const DefaultFrameTimeout = 20 * time.Millisecond

// tickGather is how long a shared tick (codecs.Ticker) waits for its
// calls' frames before it sends the ones that came: the calls are woken
// together, and on two busy cores the last of 1,000 hands its frames in
// a millisecond or two after the first.
const tickGather = 3 * time.Millisecond

// CodecClient serves the codecs of one supervised plugin process to the
// host: each is a codecs.Stateful whose per-call encoders and decoders
// live in the plugin. All calls share one bidirectional stream (codec
// protocol v1): frames due at about the same time go out as one Batch, so
// the cost of a round trip is shared by every call in it.
//
// One goroutine (run) owns the stream: it opens it on the current plugin
// instance, sends batches and, through a reader goroutine, hands results
// back to the calls waiting for them. When the plugin dies, waiting
// frames fail with ErrUnavailable, the supervisor restarts the plugin, and
// run opens a new stream; each call's state is reopened in the new plugin
// before its next frame (its codec history is lost, the call is not).
type CodecClient struct {
	sup     *Supervisor
	timeout time.Duration
	linger  time.Duration
	list    []codecs.Codec

	// shm is the host's mapping of the shared memory region passed to
	// every plugin process (shmFile); nil without one. Only serve and read
	// touch it; Close unmaps it after they have exited.
	shm     []byte
	shmFile *os.File

	mu      sync.Mutex
	pending []*codecState // frames to send, in arrival order
	states  map[uint64]*codecState
	closes  []uint64 // CLOSE frames to send
	nextID  uint64
	gen     uint64 // stream generation; 0 while no stream is up
	closed  bool
	stats   CodecStats

	onOutage func(Outage)
	outages  chan Outage // capacity 1: to the outage notifier

	// tickers are the shared tick drivers of the calls, by ptime
	// (codecs.BatchCodec.Ticker); guarded by mu.
	tickers map[time.Duration]*codecs.Ticker
	// flushNow tells run a batch is waiting in full: send it without
	// lingering for more frames.
	flushNow atomic.Bool

	up     chan struct{} // closed when the first stream is open
	kick   chan struct{} // capacity 1: pending is not empty
	down   chan uint64   // supervisor: instance generation gone
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// CodecStats counts the client's work.
type CodecStats struct {
	Batches, Frames uint64
	// MaxBatch is the largest batch sent.
	MaxBatch int
	// Timeouts are frames not answered within FrameTimeout; Failed are
	// frames that failed for another reason (plugin down, codec error).
	Timeouts, Failed uint64
	// Streams counts streams opened (1 + restarts seen).
	Streams uint64
	// Reopened counts call states reopened on a new stream.
	Reopened uint64
	// Shared counts batches whose frames went through the shared memory
	// region rather than the stream; SharedAnswers, answers that came
	// back through it.
	Shared, SharedAnswers uint64
}

// LoadCodecs starts the codec plugin cfg describes and returns its codecs
// (for a codecs.Registry) and the io.Closer that stops the plugin. The
// first start must succeed.
func LoadCodecs(ctx context.Context, cfg CodecConfig) ([]codecs.Codec, io.Closer, error) {
	c, err := NewCodecClient(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return c.Codecs(), c, nil
}

// NewCodecClient is LoadCodecs returning the concrete client.
func NewCodecClient(ctx context.Context, cfg CodecConfig) (*CodecClient, error) {
	if cfg.FrameTimeout <= 0 {
		cfg.FrameTimeout = DefaultFrameTimeout
	}
	switch {
	case cfg.Linger == 0:
		cfg.Linger = DefaultLinger
	case cfg.Linger < 0:
		cfg.Linger = 0
	}
	c := &CodecClient{
		timeout: cfg.FrameTimeout,
		linger:  cfg.Linger,
		states:  make(map[uint64]*codecState),
		kick:    make(chan struct{}, 1),
		up:      make(chan struct{}),
		down:    make(chan uint64, 4),

		onOutage: cfg.OnOutage,
		outages:  make(chan Outage, 1),
	}
	if !cfg.NoSharedMemory {
		size := cfg.sharedSize
		if size <= 0 {
			size = DefaultSharedMemory
		}
		f, b, err := protocol.NewSharedMemory("baton-codec", size)
		if err == nil {
			c.shm, c.shmFile, cfg.Config.shared = b, f, f
		} else if !errors.Is(err, protocol.ErrNoSharedMemory) && cfg.Logger != nil {
			cfg.Logger.Warn("codec batches go through the stream", "plugin", cfg.Name, "error", err)
		}
	}
	sup, err := supervise(ctx, cfg.Config, KindCodec, func(gen uint64) {
		select {
		case c.down <- gen:
		default:
		}
	})
	if err != nil {
		c.releaseShared()
		return nil, err
	}
	c.sup = sup
	inst, err := sup.current()
	if err != nil {
		_ = c.closeSup()
		return nil, err
	}
	lctx, cancel := context.WithTimeout(ctx, sup.cfg.StartTimeout)
	defer cancel()
	r, err := codecv1.NewCodecClient(inst.conn).List(lctx, &codecv1.ListRequest{})
	if err != nil {
		_ = c.closeSup()
		return nil, fmt.Errorf("plugins: %s: list codecs: %w", sup.cfg.Name, err)
	}
	for _, p := range r.GetCodecs() {
		d, err := protocol.DescriptorFromPB(p)
		if err != nil {
			_ = sup.Close()
			return nil, fmt.Errorf("plugins: %s: %w", sup.cfg.Name, err)
		}
		c.list = append(c.list, &remoteCodec{c: c, desc: d})
	}
	if len(c.list) == 0 {
		_ = c.closeSup()
		return nil, fmt.Errorf("plugins: %s: %w: the plugin serves no codec", sup.cfg.Name, ErrConfig)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	c.cancel = rcancel
	c.wg.Add(2)
	go c.run(rctx)
	go c.reap(rctx)
	if c.onOutage != nil {
		c.wg.Add(1)
		go c.notify(rctx)
	}
	select {
	case <-c.up:
	case <-lctx.Done():
		_ = c.Close()
		return nil, fmt.Errorf("plugins: %s: codec stream: %w", sup.cfg.Name, ErrStartTimeout)
	}
	return c, nil
}

// Up reports whether the codec stream to the plugin is up (frames can
// be served now).
func (c *CodecClient) Up() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen != 0
}

// Codecs returns the plugin's codecs in its preference order. Each is a
// codecs.Stateful; its stateless Encode and Decode return ErrStateful.
func (c *CodecClient) Codecs() []codecs.Codec { return c.list }

// Supervisor returns the client's supervisor (stats, pid).
func (c *CodecClient) Supervisor() *Supervisor { return c.sup }

// Stats returns a copy of the client's counters.
func (c *CodecClient) Stats() CodecStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Close stops the stream and the plugin, and fails frames still waiting.
// It is idempotent. Encoders and decoders still open fail from then on.
func (c *CodecClient) Close() error {
	c.mu.Lock()
	already := c.closed
	c.closed = true
	tickers := c.tickers
	c.tickers = nil
	c.mu.Unlock()
	if !already {
		for _, t := range tickers {
			_ = t.Close() // its last round fails with ErrClosed
		}
		c.cancel()
		c.wg.Wait()
		c.failAll(fmt.Errorf("plugins: %s: %w", c.sup.cfg.Name, ErrClosed))
		err := c.sup.Close()
		c.releaseShared() // serve and read are gone
		return err
	}
	return c.sup.Close()
}

// closeSup stops the plugin when the client did not start.
func (c *CodecClient) closeSup() error {
	err := c.sup.Close()
	c.releaseShared()
	return err
}

// releaseShared unmaps and closes the shared memory region; nothing may
// use it any more.
func (c *CodecClient) releaseShared() {
	if c.shm != nil {
		_ = protocol.UnmapSharedMemory(c.shm)
		_ = c.shmFile.Close()
		c.shm, c.shmFile = nil, nil
	}
}

// slot returns the request and answer halves of shared memory slot k
// (one per batch in flight): the request half at offset k*n, the answer
// half at the returned offset.
func (c *CodecClient) slot(k int) (req, ans []byte, ansOff uint64) {
	n := len(c.shm) / batchWindow
	half := n / 2
	base := k * n
	return c.shm[base : base+half : base+half], c.shm[base+half : base+n : base+n], uint64(base + half)
}

// slotOffset is the offset of slot k's request half.
func (c *CodecClient) slotOffset(k int) uint64 { return uint64(k * (len(c.shm) / batchWindow)) }

// sentBatch is a batch on its way, for the reader: its tick and its
// shared memory slot (-1: none).
type sentBatch struct {
	tick uint64
	slot int
}

// remoteCodec is one codec of the plugin.
type remoteCodec struct {
	c    *CodecClient
	desc codecs.Descriptor
}

var _ codecs.BatchCodec = (*remoteCodec)(nil)

// Batch implements codecs.BatchCodec: all of jobs go to the plugin in
// one batch (with whatever other calls' frames are waiting), and the
// caller waits once for all of them. The jobs may be of any of the
// plugin's codecs.
func (r *remoteCodec) Batch(jobs []codecs.Job) { r.c.batch(jobs) }

// Ticker implements codecs.BatchCodec. All the plugin's codecs share one
// tick driver per ptime, so their calls' frames go out together.
func (r *remoteCodec) Ticker(ptime time.Duration) *codecs.Ticker { return r.c.ticker(ptime) }

func (r *remoteCodec) Descriptor() codecs.Descriptor { return r.desc }

func (r *remoteCodec) Encode([]byte, []int16) (int, error) {
	return 0, fmt.Errorf("plugins: codec %s: %w", r.desc.Name, codecs.ErrStateful)
}

func (r *remoteCodec) Decode([]int16, []byte) (int, error) {
	return 0, fmt.Errorf("plugins: codec %s: %w", r.desc.Name, codecs.ErrStateful)
}

func (r *remoteCodec) NewEncoder() (codecs.Encoder, error) {
	st, err := r.c.newState(r.desc.Name, codecv1.Op_OP_OPEN_ENCODER)
	if err != nil {
		return nil, err
	}
	return (*remoteEncoder)(st), nil
}

func (r *remoteCodec) NewDecoder() (codecs.Decoder, error) {
	st, err := r.c.newState(r.desc.Name, codecv1.Op_OP_OPEN_DECODER)
	if err != nil {
		return nil, err
	}
	return (*remoteDecoder)(st), nil
}

// codecState is one call's encoder or decoder in the plugin. Its owner
// (one media goroutine) has at most one frame in flight; the fields under
// "in flight" are guarded by CodecClient.mu.
type codecState struct {
	c     *CodecClient
	id    uint64
	codec string
	open  codecv1.Op // OP_OPEN_ENCODER or OP_OPEN_DECODER

	// in flight
	gen     uint64 // stream generation the state is open on; 0: not open
	opened  bool   // opened on some stream before (for Stats.Reopened)
	waiting bool   // a frame is queued or on the wire
	queued  time.Time
	op      codecv1.Op
	seq     uint32 // of the frame waited for; 0: none
	req     []byte // request data (PCM bytes or payload copy)
	samples uint32 // CONCEAL's frame length
	resp    []byte // result data, copied out of the message
	err     error
	closed  bool
	// grp is the batch the frame belongs to, nil for a frame of its own
	// (roundTrip): the batch's caller is woken when all are answered.
	grp *batchGroup

	done chan struct{} // capacity 1: the result is in
}

func (c *CodecClient) newState(codec string, open codecv1.Op) (*codecState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("plugins: %s: %w", c.sup.cfg.Name, ErrClosed)
	}
	c.nextID++
	st := &codecState{c: c, id: c.nextID, codec: codec, open: open, done: make(chan struct{}, 1)}
	c.states[st.id] = st
	return st, nil
}

type remoteEncoder codecState

func (e *remoteEncoder) Encode(dst []byte, pcm []int16) (int, error) {
	st := (*codecState)(e)
	if len(pcm) > protocol.MaxFrameSamples {
		return 0, fmt.Errorf("plugins: codec %s: encode: %d samples, at most %d", st.codec, len(pcm), protocol.MaxFrameSamples)
	}
	data, err := st.roundTrip(codecv1.Op_OP_ENCODE, func(req []byte) []byte {
		req = growBytes(req, 2*len(pcm))
		protocol.PCMToBytes(req, pcm)
		return req
	}, 0)
	if err != nil {
		return 0, err
	}
	if len(dst) < len(data) {
		return 0, fmt.Errorf("plugins: codec %s: encode: dst holds %d, need %d: %w", st.codec, len(dst), len(data), codecs.ErrShortBuffer)
	}
	return copy(dst, data), nil
}

func (e *remoteEncoder) Close() error { return (*codecState)(e).close() }

type remoteDecoder codecState

var _ codecs.Concealer = (*remoteDecoder)(nil)

func (d *remoteDecoder) Decode(dst []int16, payload []byte) (int, error) {
	st := (*codecState)(d)
	data, err := st.roundTrip(codecv1.Op_OP_DECODE, func(req []byte) []byte {
		req = growBytes(req, len(payload))
		copy(req, payload)
		return req
	}, 0)
	if err != nil {
		return 0, err
	}
	return st.pcmOut(dst, data)
}

// Conceal implements codecs.Concealer with the plugin decoder's own
// concealment; a codec without one answers with an error, and the media
// engine falls back to its generic concealment.
func (d *remoteDecoder) Conceal(dst []int16) (int, error) {
	st := (*codecState)(d)
	data, err := st.roundTrip(codecv1.Op_OP_CONCEAL, func(req []byte) []byte { return req[:0] }, uint32(len(dst)))
	if err != nil {
		return 0, err
	}
	return st.pcmOut(dst, data)
}

func (d *remoteDecoder) Close() error { return (*codecState)(d).close() }

func (st *codecState) pcmOut(dst []int16, data []byte) (int, error) {
	if len(data)%2 != 0 {
		return 0, fmt.Errorf("plugins: codec %s: plugin returned %d bytes of PCM (odd)", st.codec, len(data))
	}
	if len(dst) < len(data)/2 {
		return 0, fmt.Errorf("plugins: codec %s: decode: dst holds %d, need %d: %w", st.codec, len(dst), len(data)/2, codecs.ErrShortBuffer)
	}
	protocol.PCMFromBytes(dst, data)
	return len(data) / 2, nil
}

// roundTrip queues one frame, waits for its result (or FrameTimeout) and
// returns the result data, valid until the state's next frame.
func (st *codecState) roundTrip(op codecv1.Op, fill func(req []byte) []byte, samples uint32) ([]byte, error) {
	c := st.c
	c.mu.Lock()
	if st.closed || c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("plugins: codec %s: %s: %w", st.codec, opName(op), codecs.ErrClosed)
	}
	if c.gen == 0 {
		// Down (or restarting): fail at once rather than stall the call's
		// media goroutine for FrameTimeout on every frame.
		c.stats.Failed++
		c.mu.Unlock()
		return nil, fmt.Errorf("plugins: codec %s: %s: %w", st.codec, opName(op), c.unavailable())
	}
	st.seq++
	if st.seq == 0 {
		st.seq = 1
	}
	st.op, st.samples, st.err, st.waiting = op, samples, nil, true
	st.grp = nil
	st.queued = time.Now()
	st.req = fill(st.req)
	select { // drop a stale result signal from a frame that timed out
	case <-st.done:
	default:
	}
	c.pending = append(c.pending, st)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}

	// No timer per frame (it would cost more than the frame's share of a
	// batch): the reaper fails frames that wait longer than FrameTimeout.
	<-st.done
	// Whoever ended the wait (reader, reaper, failAll) wrote resp and err
	// before the signal and set waiting to false, so nobody writes them
	// until this owner's next frame: no lock needed to read them.
	if st.err != nil {
		return nil, st.err
	}
	return st.resp, nil
}

// close releases the state here and, when it is open, in the plugin
// (a CLOSE frame in the next batch; nothing waits for it).
func (st *codecState) close() error {
	c := st.c
	c.mu.Lock()
	if st.closed {
		c.mu.Unlock()
		return nil
	}
	st.closed = true
	delete(c.states, st.id)
	if st.gen != 0 && st.gen == c.gen {
		c.closes = append(c.closes, st.id)
	}
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return nil
}

func (c *CodecClient) unavailable() error {
	if _, err := c.sup.current(); err != nil {
		return err
	}
	return fmt.Errorf("plugins: %s: %w: codec stream not up", c.sup.cfg.Name, ErrUnavailable)
}

// failAll fails every frame waiting, and marks every state as not open.
// Callers do not hold c.mu.
func (c *CodecClient) failAll(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = c.pending[:0]
	c.closes = c.closes[:0]
	fail := func(st *codecState) {
		if st.waiting {
			st.err, st.waiting = err, false
			c.stats.Failed++
			signal(st)
		}
		st.gen = 0
	}
	for _, st := range c.states {
		fail(st)
	}
}

// reap fails the frames that waited longer than FrameTimeout: the plugin
// hangs or is too slow. Their late answers, if any, no longer match (seq).
func (c *CodecClient) reap(ctx context.Context) {
	defer c.wg.Done()
	t := time.NewTicker(max(c.timeout/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n := 0
			c.mu.Lock()
			for _, st := range c.states {
				if st.waiting && now.Sub(st.queued) > c.timeout {
					st.seq++
					st.waiting = false
					st.err = fmt.Errorf("plugins: codec %s: %s: no answer within %v: %w", st.codec, opName(st.op), c.timeout, ErrUnavailable)
					c.stats.Timeouts++
					signal(st)
					n++
				}
			}
			c.mu.Unlock()
			if n > 0 {
				c.sup.Check()
			}
		}
	}
}

// signal tells a frame's owner its result is in: the state's own owner,
// or, for a frame of a batch, the batch's caller once all are in.
func signal(st *codecState) {
	if g := st.grp; g != nil {
		if g.left.Add(-1) == 0 {
			g.done <- struct{}{} // capacity 1, signalled once
		}
		return
	}
	select {
	case st.done <- struct{}{}:
	default:
	}
}

// run owns the stream: it opens one on the current instance, serves it
// until it breaks or the instance goes down, then waits for the next.
func (c *CodecClient) run(ctx context.Context) {
	defer c.wg.Done()
	var reported uint64 // the instance whose outage was reported: once each
	for ctx.Err() == nil {
		inst, err := c.sup.current()
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			case <-c.down:
			}
			continue
		}
		err = c.serve(ctx, inst)
		c.failAll(fmt.Errorf("plugins: %s: %w: %v", c.sup.cfg.Name, ErrUnavailable, err))
		if ctx.Err() != nil {
			return
		}
		c.sup.log.Warn("codec stream ended", "error", err)
		if inst.gen != reported {
			reported = inst.gen
			c.outage(err)
		}
		c.sup.Check()
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// outage hands an outage to the notifier, replacing one not taken yet.
func (c *CodecClient) outage(err error) {
	if c.onOutage == nil {
		return
	}
	o := Outage{Plugin: c.sup.cfg.Name, At: time.Now(), Err: err}
	for _, cd := range c.list {
		o.Codecs = append(o.Codecs, cd.Descriptor().Name)
	}
	for {
		select {
		case c.outages <- o:
			return
		default:
		}
		select {
		case <-c.outages:
		default:
		}
	}
}

// notify delivers outages to OnOutage, in order, one at a time.
func (c *CodecClient) notify(ctx context.Context) {
	defer c.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-c.outages:
			c.onOutage(o)
		}
	}
}

// serve runs one stream on inst until it fails.
func (c *CodecClient) serve(ctx context.Context, inst *instance) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Whether this instance takes batches through shared memory: asked of
	// each new instance (a restarted plugin may fail to map it).
	shared := false
	if c.shm != nil {
		lctx, lcancel := context.WithTimeout(sctx, c.sup.cfg.StartTimeout)
		r, err := codecv1.NewCodecClient(inst.conn).List(lctx, &codecv1.ListRequest{})
		lcancel()
		if err != nil {
			return fmt.Errorf("list codecs: %w", err)
		}
		shared = r.GetSharedMemory()
	}
	stream, err := codecv1.NewCodecClient(inst.conn).Frames(sctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.stats.Streams++
	c.gen = c.stats.Streams // unique per stream, never 0
	gen := c.gen
	if c.stats.Streams == 1 {
		close(c.up)
	}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.gen = 0
		c.mu.Unlock()
	}()
	// Drain stale down notices of older instances.
	for len(c.down) > 0 {
		<-c.down
	}

	readErr := make(chan error, 1)
	// answered gets one token per batch answered; at most batchWindow
	// batches are unanswered, so the reader never blocks on it.
	// It carries the batch's shared memory slot, free again (-1: none).
	answered := make(chan int, batchWindow)
	// sent tells the reader which batch (and slot) each answer is to; a
	// batch is put there before it is sent, so its answer finds it.
	sent := make(chan sentBatch, batchWindow)
	go func() { readErr <- c.read(stream, sent, answered) }()
	inflight := 0
	var free []int // shared memory slots not in flight
	if shared {
		for k := range batchWindow {
			free = append(free, k)
		}
	}

	var tick uint64
	batch := &codecv1.Batch{}
	var packed []byte // the batch's frames (layout in codec.proto)
	var heap []byte   // their buffer when not in shared memory
	for {
		select {
		case <-ctx.Done():
			_ = stream.CloseSend()
			cancel()
			<-readErr
			return ctx.Err()
		case err := <-readErr:
			return err
		case g := <-c.down:
			if g == inst.gen {
				cancel()
				<-readErr
				return errors.New("plugin instance went down")
			}
			continue
		case <-c.kick:
		}
		// Group commit: while batchWindow batches are on their way, frames
		// wait and pile up for the next one, so the batch size follows the
		// load (about the frames that arrive in one plugin round trip).
	window:
		for {
			select {
			case k := <-answered:
				inflight--
				if k >= 0 {
					free = append(free, k)
				}
				continue
			default:
			}
			if inflight < batchWindow {
				break window
			}
			select {
			case <-ctx.Done():
				_ = stream.CloseSend()
				cancel()
				<-readErr
				return ctx.Err()
			case err := <-readErr:
				return err
			case k := <-answered:
				inflight--
				if k >= 0 {
					free = append(free, k)
				}
			}
		}
		if c.linger > 0 && !c.flushNow.Swap(false) {
			time.Sleep(c.linger)
		}
		c.mu.Lock()
		n := len(c.pending) + len(c.closes)
		if n == 0 {
			c.mu.Unlock()
			continue
		}
		// The frames are packed straight into a free shared memory slot's
		// request half; one that outgrows it moves to the heap (append)
		// and goes through the stream.
		slot := -1
		var req, ans []byte
		var ansOff uint64
		if len(free) > 0 {
			slot, free = free[len(free)-1], free[:len(free)-1]
			req, ans, ansOff = c.slot(slot)
			packed = req[:0]
		} else {
			packed = heap[:0]
		}
		for _, id := range c.closes {
			packed = protocol.AppendFrame(packed, protocol.Frame{Op: codecv1.Op_OP_CLOSE, StateID: id})
		}
		c.closes = c.closes[:0]
		data := 0
		for _, st := range c.pending {
			if !st.waiting || st.closed {
				continue // timed out or closed before its batch left
			}
			if st.gen != gen {
				if st.opened {
					c.stats.Reopened++
				}
				packed = protocol.AppendFrame(packed, protocol.Frame{Op: st.open, StateID: st.id, Data: []byte(st.codec)})
				st.gen, st.opened = gen, true
			}
			// Copied: the owner may refill st.req as soon as it stops
			// waiting (a timeout), while this batch is marshalled.
			packed = protocol.AppendFrame(packed, protocol.Frame{Op: st.op, StateID: st.id, Seq: st.seq, Samples: st.samples, Data: st.req})
			data++
		}
		c.pending = c.pending[:0]
		tick++
		batch.Tick, batch.Frames, batch.Shm, batch.Answer = tick, packed, nil, nil
		if slot >= 0 {
			if protocol.Aliases(packed, req) {
				batch.Frames, batch.Shm = nil, &codecv1.Region{Offset: c.slotOffset(slot), Length: uint64(len(packed))}
				c.stats.Shared++
			} else {
				heap = packed // keep the larger buffer
			}
			batch.Answer = &codecv1.Region{Offset: ansOff, Length: uint64(len(ans))}
		} else {
			heap = packed
		}
		c.stats.Batches++
		c.stats.Frames += uint64(data)
		c.stats.MaxBatch = max(c.stats.MaxBatch, data)
		c.mu.Unlock()
		// Not under c.mu: Send may wait for flow control, which needs the
		// reader (and so c.mu) to drain the plugin's answers.
		sent <- sentBatch{tick: tick, slot: slot} // room: inflight < batchWindow
		err := stream.Send(batch)
		inflight++
		if err != nil {
			cancel()
			<-readErr
			return err
		}
	}
}

// read hands results to the states waiting for them.
func (c *CodecClient) read(stream codecv1.Codec_FramesClient, sent <-chan sentBatch, answered chan<- int) error {
	var ready []*codecState
	for {
		b, err := stream.Recv()
		if err != nil {
			return err
		}
		var to sentBatch
		select {
		case to = <-sent:
		default:
			return fmt.Errorf("answer %d to no batch sent", b.GetTick())
		}
		if b.GetTick() != to.tick {
			return fmt.Errorf("answer %d to batch %d: out of order", b.GetTick(), to.tick)
		}
		packed := b.GetFrames()
		if r := b.GetShm(); r != nil {
			// Only in the answer half of the batch's own slot, from its
			// start (the plugin writes where the host said).
			if to.slot < 0 {
				return fmt.Errorf("answer %d: in shared memory, to a batch sent without: %w", b.GetTick(), protocol.ErrBadRegion)
			}
			_, ans, ansOff := c.slot(to.slot)
			if r.GetOffset() != ansOff || r.GetLength() > uint64(len(ans)) {
				return fmt.Errorf("answer %d: %w: %d+%d, the answer's space is %d+%d", b.GetTick(), protocol.ErrBadRegion, r.GetOffset(), r.GetLength(), ansOff, len(ans))
			}
			packed = ans[:r.GetLength()]
		}
		ready = ready[:0]
		c.mu.Lock()
		if b.GetShm() != nil {
			c.stats.SharedAnswers++
		}
		for r := packed; len(r) > 0; {
			var f protocol.Frame
			f, r, err = protocol.NextFrame(r)
			if err != nil {
				c.mu.Unlock()
				return fmt.Errorf("answer %d: %w", b.GetTick(), err)
			}
			st := c.states[f.StateID]
			switch f.Op {
			case codecv1.Op_OP_OPEN_ENCODER, codecv1.Op_OP_OPEN_DECODER, codecv1.Op_OP_CLOSE:
				if f.Err {
					c.sup.log.Warn("codec plugin refused", "op", opName(f.Op), "state", f.StateID, "error", string(f.Data))
					if st != nil && f.Op != codecv1.Op_OP_CLOSE {
						st.gen = 0 // try to open again with the next frame
					}
				}
				continue
			}
			if st == nil || !st.waiting || f.Seq != st.seq {
				continue // closed, or a late answer to a frame given up on
			}
			st.waiting = false
			if f.Err {
				st.err = fmt.Errorf("plugins: codec %s: %s: plugin: %s", st.codec, opName(f.Op), f.Data)
				c.stats.Failed++
			} else {
				st.resp = append(st.resp[:0], f.Data...)
			}
			ready = append(ready, st)
		}
		c.mu.Unlock()
		// Woken outside c.mu, so the calls do not wake into a held lock.
		for _, st := range ready {
			signal(st)
		}
		// The slot is free again: its request was read, its answer copied
		// out (st.resp).
		answered <- to.slot
	}
}

func opName(op codecv1.Op) string {
	switch op {
	case codecv1.Op_OP_ENCODE:
		return "encode"
	case codecv1.Op_OP_DECODE:
		return "decode"
	case codecv1.Op_OP_CONCEAL:
		return "conceal"
	case codecv1.Op_OP_OPEN_ENCODER:
		return "open encoder"
	case codecv1.Op_OP_OPEN_DECODER:
		return "open decoder"
	case codecv1.Op_OP_CLOSE:
		return "close"
	}
	return op.String()
}

func growBytes(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// batchGroup is one Batch call's frames: its caller waits for all of
// them at once.
type batchGroup struct {
	left atomic.Int32
	done chan struct{} // capacity 1
}

// batch implements remoteCodec.Batch: the jobs' frames are queued under
// one lock, sent in the next batch (no linger), and answered with one
// wake-up of the caller.
func (c *CodecClient) batch(jobs []codecs.Job) {
	g := &batchGroup{done: make(chan struct{}, 1)}
	now := time.Now()
	c.mu.Lock()
	var down error
	switch {
	case c.closed:
		down = fmt.Errorf("plugins: %s: %w", c.sup.cfg.Name, codecs.ErrClosed)
	case c.gen == 0:
		down = c.unavailable()
	}
	for i := range jobs {
		j := &jobs[i]
		j.N, j.Err = 0, nil
		st, err := c.jobState(j)
		switch {
		case err != nil:
			j.Err = fmt.Errorf("plugins: job %d: %w", i, err)
			continue
		case st.closed:
			j.Err = fmt.Errorf("plugins: codec %s: %s: %w", st.codec, j.Op, codecs.ErrClosed)
			continue
		case down != nil:
			c.stats.Failed++
			j.Err = fmt.Errorf("plugins: codec %s: %s: %w", st.codec, j.Op, down)
			continue
		case st.waiting:
			j.Err = fmt.Errorf("plugins: codec %s: %s: state %d has a frame in flight: %w", st.codec, j.Op, st.id, codecs.ErrBadJob)
			continue
		}
		st.seq++
		if st.seq == 0 {
			st.seq = 1
		}
		st.err, st.waiting, st.queued, st.grp, st.samples = nil, true, now, g, 0
		switch j.Op {
		case codecs.JobEncode:
			st.op = codecv1.Op_OP_ENCODE
			st.req = growBytes(st.req, 2*len(j.PCM))
			protocol.PCMToBytes(st.req, j.PCM)
		case codecs.JobDecode:
			st.op = codecv1.Op_OP_DECODE
			st.req = append(st.req[:0], j.Payload...)
		case codecs.JobConceal:
			st.op = codecv1.Op_OP_CONCEAL
			st.req, st.samples = st.req[:0], uint32(len(j.PCM))
		}
		g.left.Add(1)
		c.pending = append(c.pending, st)
	}
	queued := g.left.Load()
	c.mu.Unlock()
	if queued == 0 {
		return
	}
	c.flushNow.Store(true)
	select {
	case c.kick <- struct{}{}:
	default:
	}
	<-g.done
	// Every frame's result is in (answer, timeout or failure) and nobody
	// writes its state until this caller's next frame: no lock needed.
	for i := range jobs {
		j := &jobs[i]
		if j.Err != nil {
			continue // not queued
		}
		st, _ := c.jobState(j)
		if st.err != nil {
			j.Err = st.err
			continue
		}
		switch j.Op {
		case codecs.JobEncode:
			if len(j.Payload) < len(st.resp) {
				j.Err = fmt.Errorf("plugins: codec %s: encode: dst holds %d, need %d: %w", st.codec, len(j.Payload), len(st.resp), codecs.ErrShortBuffer)
				continue
			}
			j.N = copy(j.Payload, st.resp)
		default:
			j.N, j.Err = st.pcmOut(j.PCM, st.resp)
		}
	}
}

// jobState returns the state of this client that j names, checking the
// job's op and sizes.
func (c *CodecClient) jobState(j *codecs.Job) (*codecState, error) {
	var st *codecState
	switch j.Op {
	case codecs.JobEncode:
		e, ok := j.Enc.(*remoteEncoder)
		if !ok || e.c != c {
			return nil, fmt.Errorf("%s: encoder %T is not one of plugin %s's: %w", j.Op, j.Enc, c.sup.cfg.Name, codecs.ErrBadJob)
		}
		st = (*codecState)(e)
		if len(j.PCM) > protocol.MaxFrameSamples {
			return nil, fmt.Errorf("codec %s: encode: %d samples, at most %d: %w", st.codec, len(j.PCM), protocol.MaxFrameSamples, codecs.ErrBadJob)
		}
	case codecs.JobDecode, codecs.JobConceal:
		d, ok := j.Dec.(*remoteDecoder)
		if !ok || d.c != c {
			return nil, fmt.Errorf("%s: decoder %T is not one of plugin %s's: %w", j.Op, j.Dec, c.sup.cfg.Name, codecs.ErrBadJob)
		}
		st = (*codecState)(d)
		if j.Op == codecs.JobDecode && len(j.Payload) > protocol.MaxFrameData {
			return nil, fmt.Errorf("codec %s: decode: %d-byte payload, at most %d: %w", st.codec, len(j.Payload), protocol.MaxFrameData, codecs.ErrBadJob)
		}
		if j.Op == codecs.JobConceal && (len(j.PCM) < 1 || len(j.PCM) > protocol.MaxFrameSamples) {
			return nil, fmt.Errorf("codec %s: conceal: %d samples, want 1..%d: %w", st.codec, len(j.PCM), protocol.MaxFrameSamples, codecs.ErrBadJob)
		}
	default:
		return nil, fmt.Errorf("%v: %w", j.Op, codecs.ErrBadJob)
	}
	return st, nil
}

// ticker returns the shared tick driver for ptime, starting it on first
// use; Close stops it.
func (c *CodecClient) ticker(ptime time.Duration) *codecs.Ticker {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.tickers[ptime]; t != nil {
		return t
	}
	t := codecs.NewTicker(ptime, tickGather, c.batch)
	if c.closed {
		_ = t.Close() // Do then runs jobs by themselves: ErrClosed
		return t
	}
	if c.tickers == nil {
		c.tickers = make(map[time.Duration]*codecs.Ticker)
	}
	c.tickers[ptime] = t
	return t
}
