package media

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/baton-voice/baton/codecs"
)

type badCodec struct{ linearCodec }

func (badCodec) Descriptor() codecs.Descriptor {
	return codecs.Descriptor{Name: "BAD", PayloadType: 96, SampleRate: 0, ClockRate: 8000}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	t.Parallel()
	k := mustKeys(t)
	local := addr("127.0.0.1:0")
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{name: "no codec", cfg: Config{Local: local}, want: ErrNoCodec},
		{name: "no local address", cfg: Config{Codec: testCodec()}, want: ErrInvalidAddress},
		{name: "only send keys", cfg: Config{Local: local, Codec: testCodec(), SendKeys: k}, want: ErrKeysMismatch},
		{name: "only receive keys", cfg: Config{Local: local, Codec: testCodec(), RecvKeys: k}, want: ErrKeysMismatch},
		{name: "negative ptime", cfg: Config{Local: local, Codec: testCodec(), Ptime: -time.Millisecond}, want: ErrInvalidPtime},
		{name: "ptime too long", cfg: Config{Local: local, Codec: testCodec(), Ptime: time.Second}, want: ErrInvalidPtime},
		{name: "ptime below one sample", cfg: Config{Local: local, Codec: testCodec(), Ptime: 100 * time.Microsecond}, want: ErrInvalidPtime},
		{name: "negative jitter delay", cfg: Config{Local: local, Codec: testCodec(), JitterDelay: -time.Millisecond}, want: ErrInvalidJitterDelay},
		{name: "jitter delay too long", cfg: Config{Local: local, Codec: testCodec(), JitterDelay: time.Minute}, want: ErrInvalidJitterDelay},
		{name: "negative stale source timeout", cfg: Config{Local: local, Codec: testCodec(), StaleSourceTimeout: -time.Millisecond}, want: ErrInvalidStaleTimeout},
		{name: "codec without sample rate", cfg: Config{Local: local, Codec: badCodec{}}, want: ErrInvalidCodec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Open(context.Background(), tt.cfg)
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestOpenBindError(t *testing.T) {
	t.Parallel()
	a := openSession(t, Config{Local: addr("127.0.0.1:0")})
	_, err := Open(context.Background(), Config{Local: a.LocalAddr(), Codec: testCodec()})
	if err == nil {
		t.Fatal("second Open on the same port succeeded")
	}
}

func TestOpenDefaults(t *testing.T) {
	t.Parallel()
	s := openSession(t, Config{Local: addr("127.0.0.1:0")})
	if s.ptime != DefaultPtime {
		t.Errorf("ptime %v, want %v", s.ptime, DefaultPtime)
	}
	if s.eng.jb.cfg.delay != DefaultJitterDelay {
		t.Errorf("jitter delay %v, want %v", s.eng.jb.cfg.delay, DefaultJitterDelay)
	}
	if s.eng.jb.cfg.stale != DefaultStaleSourceTimeout {
		t.Errorf("stale source timeout %v, want %v", s.eng.jb.cfg.stale, DefaultStaleSourceTimeout)
	}
	if s.SSRC() == 0 {
		t.Error("random SSRC is 0")
	}
	if la := s.LocalAddr(); !la.Addr().IsLoopback() || la.Port() == 0 {
		t.Errorf("LocalAddr %v, want a bound loopback port", la)
	}
	fixed := openSession(t, Config{Local: addr("127.0.0.1:0"), SSRC: 42})
	if fixed.SSRC() != 42 {
		t.Errorf("SSRC %d, want 42", fixed.SSRC())
	}
}
