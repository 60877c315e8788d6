package media

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/baton-voice/baton/codecs"
)

// The batch path: a session whose codec is a codecs.BatchCodec (a codec
// plugin) ticks on the codec's shared codecs.Ticker instead of a ticker of
// its own, and hands the tick's encode and decode to it together (one
// Do), so all the calls' frames of a tick reach the codec in one batch
// (docs/plugins.md, "Batches"). Everything else about the tick (consent,
// payload sources and sinks, concealment, muting) is the per-frame path's.

// batchTick is tick for a batch codec: send says whether the tick's frame
// goes to to (else the frame time is skipped).
func (e *engine) batchTick(call *codecs.TickerCall, at time.Time, to netip.AddrPort, send bool) {
	jobs := e.jobs[:0]
	n, encoded := 0, false
	if send {
		if n, encoded = e.send.readPayload(e.source); !encoded {
			e.send.readPCM(e.source)
			jobs = append(jobs, codecs.Job{Op: codecs.JobEncode, Enc: e.send.enc, PCM: e.send.pcm, Payload: e.send.payload})
		}
	}
	f := e.jb.pop(at)
	// Only a plain decode goes in the batch: a PayloadSink may take the
	// frame undecoded, and concealment is rare; both keep the direct call.
	decode := f.kind == frameReal && !e.mute && e.psink == nil
	if decode {
		jobs = append(jobs, codecs.Job{Op: codecs.JobDecode, Dec: e.dec, PCM: e.pcm, Payload: f.payload})
	}
	call.Do(jobs)
	e.jobs = jobs
	if send {
		var err error
		if !encoded {
			n, err = jobs[0].N, jobs[0].Err
		}
		pkt, err := e.send.encoded(n, err)
		e.transmit(to, pkt, err)
	} else {
		e.skipFrame()
	}
	var dec *codecs.Job
	if decode {
		dec = &jobs[len(jobs)-1]
	}
	e.play(f, dec)
	clear(jobs) // no references to the frame's buffers until next tick
}

// encoded is next's second half for a payload of n bytes encoded
// elsewhere (err: the encode failed).
func (s *sender) encoded(n int, err error) ([]byte, error) {
	if err != nil {
		s.skip(1)
		return nil, fmt.Errorf("media: encode: %w", err)
	}
	return s.packet(n)
}
