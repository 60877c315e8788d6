package handoff

import (
	"errors"
	"testing"
	"time"
)

func TestDefaultTimeouts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		ptime       time.Duration
		wantNoAudio time.Duration
	}{
		{"20 ms", 20 * time.Millisecond, 60 * time.Millisecond},
		{"30 ms", 30 * time.Millisecond, 90 * time.Millisecond},
		{"zero falls back to 20 ms", 0, 60 * time.Millisecond},
		{"negative falls back to 20 ms", -time.Second, 60 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := DefaultTimeouts(tt.ptime)
			if d.NoAudio != tt.wantNoAudio {
				t.Errorf("NoAudio %v, want %v", d.NoAudio, tt.wantNoAudio)
			}
			if err := d.Validate(); err != nil {
				t.Errorf("defaults invalid: %v", err)
			}
		})
	}
}

func TestTimeoutsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(*Timeouts)
	}{
		{"zero query", func(x *Timeouts) { x.Query = 0 }},
		{"negative guard", func(x *Timeouts) { x.Guard = -time.Second }},
		{"zero new address", func(x *Timeouts) { x.NewAddress = 0 }},
		{"guard within A's window", func(x *Timeouts) { x.Guard = x.NoAudio + x.Answer + x.AddressAck + x.NewAudio }},
		{"offer within A's window", func(x *Timeouts) { x.Offer = x.StopAck + x.NoAudio + x.Answer + x.AddressAck + x.NewAudio }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			x := DefaultTimeouts(0)
			tt.modify(&x)
			if err := x.Validate(); !errors.Is(err, ErrInvalidTimeouts) {
				t.Fatalf("got %v, want ErrInvalidTimeouts", err)
			}
		})
	}
}

func TestDurationCoversEveryTimer(t *testing.T) {
	t.Parallel()
	// Give every timer a distinct duration, so a Duration that returns the
	// wrong field shows up.
	x := Timeouts{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	seen := map[time.Duration]Timer{}
	for tm := TimerNone + 1; tm < timerCount; tm++ {
		d := x.Duration(tm)
		if d == 0 {
			t.Errorf("timer %s has no duration", tm)
		}
		if other, dup := seen[d]; dup {
			t.Errorf("timers %s and %s share field", tm, other)
		}
		seen[d] = tm
	}
	if x.Duration(TimerNone) != 0 || x.Duration(timerCount) != 0 {
		t.Error("no-timer has a duration")
	}
}

func TestDeadline(t *testing.T) {
	t.Parallel()
	x := DefaultTimeouts(20 * time.Millisecond)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		state  State
		want   time.Time
		wantOK bool
	}{
		{"step-6 timer from step 5", ACheckingAudio, now.Add(60 * time.Millisecond), true},
		{"B's guard", BMuted, now.Add(10 * time.Second), true},
		{"C waits for A's address", CSwitched, now.Add(3 * time.Second), true},
		{"no timer", AIdle, time.Time{}, false},
		{"terminal", ADone, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := x.Deadline(tt.state, now)
			if ok != tt.wantOK || !got.Equal(tt.want) {
				t.Fatalf("got %v %v, want %v %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
