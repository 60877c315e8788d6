package media

import (
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

func testSettings(t testing.TB, cfg Config) settings {
	t.Helper()
	if cfg.Codec == nil {
		cfg.Codec = testCodec()
	}
	if !cfg.Local.IsValid() {
		cfg.Local = addr("127.0.0.1:0")
	}
	s, err := cfg.settings()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSenderPackets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		secure bool
	}{
		{name: "rtp"},
		{name: "srtp", secure: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{Source: &patternSource{tag: 1}}
			if tt.secure {
				cfg.SendKeys, cfg.RecvKeys = mustKeys(t), mustKeys(t)
			}
			set := testSettings(t, cfg)
			snd, err := newSender(set, 0x1234)
			if err != nil {
				t.Fatal(err)
			}
			var dec *srtp.Context
			if tt.secure {
				if dec, err = srtp.CreateContext(cfg.SendKeys.MasterKey[:], cfg.SendKeys.MasterSalt[:], srtpProfile); err != nil {
					t.Fatal(err)
				}
			}
			parse := func(b []byte) rtp.Packet {
				t.Helper()
				b = append([]byte(nil), b...)
				if dec != nil {
					if b, err = dec.DecryptRTP(nil, b, nil); err != nil {
						t.Fatalf("decrypt: %v", err)
					}
				}
				var p rtp.Packet
				if err := p.Unmarshal(b); err != nil {
					t.Fatal(err)
				}
				return p
			}
			next := func() rtp.Packet {
				t.Helper()
				b, err := snd.next(cfg.Source)
				if err != nil {
					t.Fatal(err)
				}
				return parse(b)
			}
			p0, p1 := next(), next()
			snd.skip(3) // paused for three frame times
			p2 := next()

			for i, p := range []rtp.Packet{p0, p1, p2} {
				if p.Version != 2 || p.PayloadType != testPT || p.SSRC != 0x1234 {
					t.Fatalf("packet %d header %+v", i, p.Header)
				}
				pcm := make([]int16, 160)
				if _, err := testCodec().Decode(pcm, p.Payload); err != nil {
					t.Fatal(err)
				}
				if _, k, ok := parseFrame(pcm); !ok || k != i+1 {
					t.Fatalf("packet %d carries frame %d (ok %v), want %d", i, k, ok, i+1)
				}
			}
			if !p0.Marker || p1.Marker || !p2.Marker {
				t.Errorf("markers %v %v %v, want true false true (RFC 3551 §4.1)", p0.Marker, p1.Marker, p2.Marker)
			}
			if p1.SequenceNumber != p0.SequenceNumber+1 || p2.SequenceNumber != p1.SequenceNumber+1 {
				t.Errorf("sequence %d %d %d, want consecutive", p0.SequenceNumber, p1.SequenceNumber, p2.SequenceNumber)
			}
			if p1.Timestamp-p0.Timestamp != 160 || p2.Timestamp-p1.Timestamp != 4*160 {
				t.Errorf("timestamps %d %d %d, want steps 160 then 640", p0.Timestamp, p1.Timestamp, p2.Timestamp)
			}
		})
	}
}

func TestSenderRandomStart(t *testing.T) {
	t.Parallel()
	set := testSettings(t, Config{})
	a, err := newSender(set, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newSender(set, 1)
	if err != nil {
		t.Fatal(err)
	}
	// RFC 3550 §5.1: random initial values. Equal sequence numbers AND
	// timestamps by chance: probability 2^-48.
	if a.pkt.SequenceNumber == b.pkt.SequenceNumber && a.pkt.Timestamp == b.pkt.Timestamp {
		t.Fatalf("two senders start at the same seq %d and timestamp %d", a.pkt.SequenceNumber, a.pkt.Timestamp)
	}
}

// TestSenderAllocs proves the per-packet send path allocates nothing.
func TestSenderAllocs(t *testing.T) {
	tests := []struct {
		name   string
		secure bool
	}{
		{name: "rtp"},
		{name: "srtp", secure: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Source: &patternSource{tag: 1}}
			if tt.secure {
				cfg.SendKeys, cfg.RecvKeys = mustKeys(t), mustKeys(t)
			}
			snd, err := newSender(testSettings(t, cfg), 7)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := snd.next(cfg.Source); err != nil { // warm up: SRTP state for the SSRC
				t.Fatal(err)
			}
			allocs := testing.AllocsPerRun(1000, func() {
				if _, err := snd.next(cfg.Source); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Fatalf("sender.next allocates %.1f times per packet, want 0", allocs)
			}
		})
	}
}

// TestSenderIndex: the index a sender reports is the one it encrypted its
// last packet under (RFC 3711 §3.3.1), across a wrap; none before the
// first packet and none for plain RTP.
func TestSenderIndex(t *testing.T) {
	t.Parallel()
	first := uint16(65534)
	snd, err := newSender(testSettings(t, Config{SendKeys: mustKeys(t), RecvKeys: mustKeys(t), FirstSequence: &first}), 0xfeed)
	if err != nil {
		t.Fatal(err)
	}
	if idx, ok := snd.index(); ok {
		t.Fatalf("index before the first packet: %+v", idx)
	}
	for _, want := range []ROC{
		{SSRC: 0xfeed, ROC: 0, Seq: 65534, HasSeq: true},
		{SSRC: 0xfeed, ROC: 0, Seq: 65535, HasSeq: true},
		{SSRC: 0xfeed, ROC: 1, Seq: 0, HasSeq: true},
		{SSRC: 0xfeed, ROC: 1, Seq: 1, HasSeq: true},
	} {
		if _, err := snd.next(nil); err != nil {
			t.Fatal(err)
		}
		if idx, ok := snd.index(); !ok || idx != want {
			t.Fatalf("index %+v %v, want %+v", idx, ok, want)
		}
	}
	plain, err := newSender(testSettings(t, Config{}), 0xfeed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.next(nil); err != nil {
		t.Fatal(err)
	}
	if idx, ok := plain.index(); ok {
		t.Fatalf("plain RTP has an index: %+v", idx)
	}
}
