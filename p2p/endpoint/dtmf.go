package endpoint

import (
	"context"
	"fmt"

	"github.com/baton-voice/baton/p2p/wire"
)

// EventDTMF is the event type of one digit the far party pressed
// (Event.Digit, Event.DurationMS), published in the order pressed.
const EventDTMF = "call.dtmf"

// DTMFRequest is the body of POST /v1/calls/{id}/dtmf and what SendDTMF
// sends: digits pressed in this order, each lasting DurationMS (0 means
// wire.DefaultDTMFDurationMS).
type DTMFRequest struct {
	Digits     string `json:"digits"`
	DurationMS int    `json:"duration_ms,omitempty"`
}

// checkDTMF validates a request before anything is sent.
func checkDTMF(req DTMFRequest) error {
	if err := wire.CheckDTMFDigits(req.Digits); err != nil {
		return fmt.Errorf("%w: %q: %w", ErrInvalidDTMF, req.Digits, err)
	}
	if req.DurationMS != 0 && (req.DurationMS < wire.MinDTMFDurationMS || req.DurationMS > wire.MaxDTMFDurationMS) {
		return fmt.Errorf("%w: duration_ms %d: want %d-%d (or 0 for %d)", ErrInvalidDTMF, req.DurationMS,
			wire.MinDTMFDurationMS, wire.MaxDTMFDurationMS, wire.DefaultDTMFDurationMS)
	}
	return nil
}

// SendDTMF implements API: it sends digits to the far party of active
// call id, on the call's signaling connection (docs/protocol.md §14), so
// after a handoff they go to whichever device has the call now. It returns
// once the message is written; the far party reports each digit as a
// call.dtmf event. Bad digits are refused (ErrInvalidDTMF, naming the
// character) before anything is sent.
func (e *Endpoint) SendDTMF(ctx context.Context, id string, req DTMFRequest) error {
	if err := checkDTMF(req); err != nil {
		return err
	}
	c, err := e.lookup(id)
	if err != nil {
		return err
	}
	return c.exec(ctx, func() error { return c.sendDTMF(req) })
}

// sendDTMF runs on the call's owner goroutine.
func (c *call) sendDTMF(req DTMFRequest) error {
	if c.state != CallActive {
		return fmt.Errorf("%w: cannot send DTMF in a %s call", ErrBadState, c.state)
	}
	if c.sigLost || c.conn == nil {
		return fmt.Errorf("%w: call %s has lost its signaling connection; DTMF travels on it", ErrUnreachable, c.id)
	}
	m := &wire.DTMF{CallID: c.id, Digits: req.Digits, DurationMS: req.DurationMS}
	if err := c.conn.Send(m, sendTimeout); err != nil {
		return fmt.Errorf("%w: send dtmf to %s: %w", ErrUnreachable, c.peer, err)
	}
	c.log.Info("dtmf sent", "digits", len(req.Digits), "duration_ms", req.DurationMS)
	return nil
}

// onDTMF publishes one call.dtmf event per digit, in order (run goroutine).
func (c *call) onDTMF(m *wire.DTMF) {
	dur := m.DurationMS
	if dur == 0 {
		dur = wire.DefaultDTMFDurationMS
	}
	// Digits are not logged: they may be a PIN.
	c.log.Info("dtmf received", "digits", len(m.Digits), "duration_ms", dur)
	for i := 0; i < len(m.Digits); i++ {
		d := string(m.Digits[i])
		c.e.emit(Event{Type: EventDTMF, CallID: c.id, Peer: c.peer.String(), Digit: d, DurationMS: dur,
			Detail: fmt.Sprintf("digit=%s duration_ms=%d", d, dur)})
	}
}
