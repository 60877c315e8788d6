package codecs

import (
	"fmt"
	"time"
)

// Batches. A codec whose frames cost little to compute but much to reach
// (a codec plugin: every exchange with its process crosses a socket, two
// goroutine hand-offs and a stream's framing) does many calls' frames at
// once far cheaper than one at a time. Such a codec implements BatchCodec:
// the media engines of the calls that use it tick together on the codec's
// Ticker and hand it all of one tick's frames in one Batch, instead of one
// synchronous Encode and Decode per call and frame.

// JobOp is what a Job asks for.
type JobOp uint8

const (
	// JobUnknown is the zero JobOp; a Job with it fails.
	JobUnknown JobOp = iota
	// JobEncode encodes PCM into Payload with Enc.
	JobEncode
	// JobDecode decodes Payload into PCM with Dec.
	JobDecode
	// JobConceal writes a lost frame's stand-in into PCM with Dec's
	// concealment (Dec must be a Concealer).
	JobConceal
)

// String returns the op's name.
func (o JobOp) String() string {
	switch o {
	case JobEncode:
		return "encode"
	case JobDecode:
		return "decode"
	case JobConceal:
		return "conceal"
	}
	return fmt.Sprintf("JobOp(%d)", uint8(o))
}

// Job is one frame of one call in a batch: the arguments of one Encode,
// Decode or Conceal, and its results.
type Job struct {
	Op JobOp
	// Enc is the call's encoder (JobEncode); Dec its decoder (JobDecode,
	// JobConceal). Both come from the batch codec's NewEncoder and
	// NewDecoder; one state appears at most once in a batch.
	Enc Encoder
	Dec Decoder
	// PCM is the frame to encode (JobEncode), or where the decoded or
	// concealed samples go (JobDecode, JobConceal: up to len(PCM)).
	PCM []int16
	// Payload is where the encoded frame goes (JobEncode), or the payload
	// to decode (JobDecode).
	Payload []byte

	// N is the result: bytes written to Payload (JobEncode) or samples
	// written to PCM (JobDecode, JobConceal).
	N int
	// Err is the job's error; nil when N is valid.
	Err error
}

// BatchCodec is a Stateful codec that does many calls' frames together:
// Batch takes all of a tick's frames of many calls and returns them done,
// in one exchange with wherever the codec runs. Its calls share a Ticker,
// so their frames fall due at the same instants and meet in one batch.
//
// A media engine uses both when its codec offers them; G.711 and other
// in-process codecs do not implement BatchCodec and keep the direct
// per-frame call, which costs less than any batching.
type BatchCodec interface {
	Stateful
	// Batch does every job and returns when each has N or Err set. It is
	// safe for concurrent use; a job's error does not fail the others.
	Batch(jobs []Job)
	// Ticker returns the tick driver shared by this codec's calls whose
	// frames last ptime. The codec owns it (it stops when the codec's
	// owner closes it), so all its calls get the same one.
	Ticker(ptime time.Duration) *Ticker
}

// RunJobs does jobs one at a time through their own Encoder and Decoder:
// what a Batch costs without batching, for codecs and tests that have no
// better way.
func RunJobs(jobs []Job) {
	for i := range jobs {
		j := &jobs[i]
		j.N, j.Err = 0, nil
		switch j.Op {
		case JobEncode:
			if j.Enc == nil {
				j.Err = fmt.Errorf("codecs: job %d: encode without an encoder: %w", i, ErrBadJob)
				continue
			}
			j.N, j.Err = j.Enc.Encode(j.Payload, j.PCM)
		case JobDecode:
			if j.Dec == nil {
				j.Err = fmt.Errorf("codecs: job %d: decode without a decoder: %w", i, ErrBadJob)
				continue
			}
			j.N, j.Err = j.Dec.Decode(j.PCM, j.Payload)
		case JobConceal:
			plc, ok := j.Dec.(Concealer)
			if !ok {
				j.Err = fmt.Errorf("codecs: job %d: conceal: decoder %T has no concealment: %w", i, j.Dec, ErrBadJob)
				continue
			}
			j.N, j.Err = plc.Conceal(j.PCM)
		default:
			j.Err = fmt.Errorf("codecs: job %d: %v: %w", i, j.Op, ErrBadJob)
		}
	}
}
