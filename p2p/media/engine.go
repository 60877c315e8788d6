package media

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
)

// engine is everything the session's timeline goroutine owns: the sender,
// the receiver with its jitter buffer, the playout buffers and the socket
// packets are sent from. Only that goroutine touches it, so it needs no
// locks; tests, the fuzz target and benchmarks drive it directly.
type engine struct {
	log    *slog.Logger
	ptime  time.Duration
	dec    codecs.Decoder   // this call's decoder state; closed by close
	plc    codecs.Concealer // dec's loss concealment, nil: the generic one
	codec  codecs.Codec     // the call's codec, offered to an audio.PayloadSink
	source audio.Source
	// poller is source, when it wants to be polled once per tick
	// (audio.Poller): bound once, so the tick is a plain call.
	poller audio.Poller
	sink   audio.Sink
	psink  audio.PayloadSink // sink, when it takes frames still encoded
	send   *sender
	recv   *receiver
	jb     *jitterBuffer
	pcm    []int16 // frame handed to the sink
	last   []int16 // last received frame, for concealment
	// hasLast says whether last holds a frame yet.
	hasLast bool
	// lastPayload holds the last frame a PayloadSink took, still encoded;
	// lastEncoded says it is newer than last. It is decoded into last
	// only when a frame must be concealed (once per loss, not per packet).
	lastPayload []byte
	lastEncoded bool
	samples     int // samples per frame
	conn        *net.UDPConn
	impair      *impairer // nil unless Config.Impairment
	// mute: Session.SetPlaying(false), the sink gets silence.
	mute bool
	// batch is the codec when it is a codecs.BatchCodec: the session
	// ticks on its Ticker and codes through batchTick (batch.go).
	batch codecs.BatchCodec
	jobs  []codecs.Job // batchTick's, reused

	packetsSent, bytesSent, sendErrors uint64
	sinkErrors, decodeErrors           uint64
	payloadsPlayed                     uint64
	rebinds                            uint64
	loggedSourceErrors                 uint64
}

func newEngine(s settings, ssrc uint32) (*engine, error) {
	snd, err := newSender(s, ssrc)
	if err != nil {
		return nil, err
	}
	jb := newJitterBuffer(jitterConfig{
		ptime:      s.Ptime,
		delay:      s.JitterDelay,
		step:       s.step,
		clockRate:  s.desc.ClockRate,
		payloadCap: s.payloadCap,
		stale:      s.StaleSourceTimeout,
	})
	rcv, err := newReceiver(s, jb)
	if err != nil {
		_ = snd.enc.Close()
		return nil, err
	}
	dec, err := codecs.NewDecoder(s.Codec)
	if err != nil {
		_ = snd.enc.Close()
		return nil, fmt.Errorf("media: %s decoder: %w", s.desc.Name, err)
	}
	plc, _ := dec.(codecs.Concealer)
	e := &engine{
		log:     s.Logger,
		ptime:   s.Ptime,
		codec:   s.Codec,
		dec:     dec,
		plc:     plc,
		source:  s.Source,
		sink:    s.Sink,
		send:    snd,
		recv:    rcv,
		jb:      jb,
		pcm:     make([]int16, s.samplesPerFrame),
		last:    make([]int16, s.samplesPerFrame),
		samples: s.samplesPerFrame,
	}
	e.poller, _ = s.Source.(audio.Poller)
	if bc, ok := s.Codec.(codecs.BatchCodec); ok {
		e.batch = bc
		e.jobs = make([]codecs.Job, 0, 2)
	}
	if ps, ok := s.Sink.(audio.PayloadSink); ok {
		e.psink = ps
		e.lastPayload = make([]byte, 0, s.payloadCap)
	}
	return e, nil
}

// sendFrame sends the next frame to the remote address.
func (e *engine) sendFrame(to netip.AddrPort) {
	pkt, err := e.send.next(e.source)
	e.transmit(to, pkt, err)
}

// transmit sends pkt, the frame's packet, or counts err, why there is none.
func (e *engine) transmit(to netip.AddrPort, pkt []byte, err error) {
	if n := e.send.sourceErrors; n != e.loggedSourceErrors {
		e.loggedSourceErrors = n
		logCount(e.log, "audio source failed; sending silence", n, e.send.lastSourceErr)
	}
	if err != nil {
		e.sendErrors++
		logCount(e.log, "cannot build rtp packet", e.sendErrors, err)
		return
	}
	if e.impair != nil {
		// Counted as sent: the network, not the sender, loses or delays it.
		e.packetsSent++
		e.bytesSent += uint64(len(pkt))
		e.impair.send(e.conn, pkt, to)
		return
	}
	n, err := e.conn.WriteToUDPAddrPort(pkt, to)
	if err != nil {
		e.sendErrors++
		logCount(e.log, "cannot send rtp packet", e.sendErrors, err)
		return
	}
	e.packetsSent++
	e.bytesSent += uint64(n)
}

// skipFrame accounts for a frame time in which nothing was sent.
func (e *engine) skipFrame() { e.send.skip(1) }

// playout writes the frame due at at to the sink (nothing before the first
// packet's playout time).
func (e *engine) playout(at time.Time) { e.play(e.jb.pop(at), nil) }

// play plays f; dec, when not nil, is f's decode already done (a batch
// codec's job), else play decodes a real frame itself.
func (e *engine) play(f frame, dec *codecs.Job) {
	if e.mute && f.kind != frameNone {
		// Held: what arrives is not played (nor concealed later).
		e.lastEncoded, e.hasLast = false, false
		clear(e.pcm)
		if e.sink != nil {
			if err := e.sink.WriteFrame(e.pcm); err != nil {
				e.sinkErrors++
				logCount(e.log, "audio sink failed", e.sinkErrors, err)
			}
		}
		return
	}
	switch f.kind {
	case frameNone:
		return
	case frameReal:
		if e.psink != nil {
			ok, err := e.psink.WritePayload(e.codec, e.samples, f.payload)
			if err != nil {
				e.sinkErrors++
				logCount(e.log, "audio sink failed", e.sinkErrors, err)
				return
			}
			if ok {
				// Taken without decoding; kept for concealment.
				e.payloadsPlayed++
				e.lastEncoded = len(f.payload) <= cap(e.lastPayload)
				if e.lastEncoded {
					e.lastPayload = append(e.lastPayload[:0], f.payload...)
				}
				return
			}
		}
		e.lastEncoded = false
		var n int
		var err error
		if dec != nil {
			n, err = dec.N, dec.Err
		} else {
			n, err = e.dec.Decode(e.pcm, f.payload)
		}
		if err != nil {
			e.decodeErrors++
			logCount(e.log, "cannot decode rtp payload", e.decodeErrors, err)
			e.conceal(1)
			break
		}
		clear(e.pcm[n:])
		copy(e.last, e.pcm)
		e.hasLast = true
	default:
		e.conceal(f.run)
	}
	if e.sink == nil {
		return
	}
	if err := e.sink.WriteFrame(e.pcm); err != nil {
		e.sinkErrors++
		logCount(e.log, "audio sink failed", e.sinkErrors, err)
	}
}

// conceal fills e.pcm for the run-th frame in a row that is missing: with
// the decoder's own concealment when it has one (codecs.Concealer), else
// by fading out the last frame.
func (e *engine) conceal(run int) {
	if e.lastEncoded {
		// The frames before the loss went to a PayloadSink undecoded:
		// decode the last one now (feeding a Concealer's history too).
		e.lastEncoded = false
		e.hasLast = false
		if n, err := e.dec.Decode(e.last, e.lastPayload); err == nil {
			clear(e.last[n:])
			e.hasLast = true
		}
	}
	if e.plc != nil && run <= maxConcealFrames {
		n, err := e.plc.Conceal(e.pcm)
		if err == nil {
			clear(e.pcm[n:])
			return
		}
		e.decodeErrors++
		logCount(e.log, "codec concealment failed", e.decodeErrors, err)
	}
	conceal(e.pcm, e.lastFrame(), run)
}

// close releases the call's encoder and decoder state, once the timeline
// goroutine has exited.
func (e *engine) close() error {
	return errors.Join(e.send.enc.Close(), e.dec.Close())
}

func (e *engine) lastFrame() []int16 {
	if !e.hasLast {
		return nil
	}
	return e.last
}

// stats returns the engine's part of Stats.
func (e *engine) stats() Stats {
	js := e.jb.stats()
	r := e.recv
	return Stats{
		PacketsSent:       e.packetsSent,
		BytesSent:         e.bytesSent,
		PacketsReceived:   r.packets,
		BytesReceived:     r.bytes,
		Lost:              js.lost,
		Late:              js.late,
		Duplicates:        js.duplicates,
		Reordered:         js.reordered,
		FramesPlayed:      js.played,
		FramesConcealed:   js.concealed,
		Malformed:         r.malformed,
		AuthFailed:        r.authFailed,
		Replayed:          r.replayed,
		WrongPayloadType:  r.wrPT,
		SourceSwitches:    js.sourceSwitches,
		StaleSource:       js.staleSource,
		Resyncs:           js.resyncs,
		SendErrors:        e.sendErrors,
		SourceErrors:      e.send.sourceErrors,
		SinkErrors:        e.sinkErrors,
		DecodeErrors:      e.decodeErrors,
		PayloadsSent:      e.send.payloads,
		PayloadsPlayed:    e.payloadsPlayed,
		Jitter:            js.jitter,
		Rebinds:           e.rebinds,
		FirstPacket:       r.first,
		LastPacket:        r.last,
		LongestPlayoutGap: time.Duration(js.longestGapFrames) * e.ptime,
		RemoteSSRC:        js.remoteSSRC,
	}
}

// logCount logs a repeated failure at its 1st, 10th, 100th... occurrence,
// so a broken peer or device cannot flood the log; Stats has the exact count.
func logCount(log *slog.Logger, msg string, count uint64, err error) {
	for c := count; c > 0; c /= 10 {
		if c == 1 {
			log.Warn(msg, "count", count, "error", err)
			return
		}
		if c%10 != 0 {
			return
		}
	}
}
