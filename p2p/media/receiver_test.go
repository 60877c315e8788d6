package media

import (
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/audio"
	"github.com/pion/rtp"
)

func newTestEngine(t testing.TB, recvKeys *Keys, sink audio.Sink) *engine {
	t.Helper()
	cfg := Config{Sink: sink}
	if recvKeys != nil {
		cfg.SendKeys, cfg.RecvKeys = mustKeys(t), recvKeys
	}
	eng, err := newEngine(testSettings(t, cfg), 99)
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

func TestReceiverVerdicts(t *testing.T) {
	t.Parallel()
	plainRTP := func(mut func(*rtp.Packet)) func(p *rawPeer) [][]byte {
		return func(p *rawPeer) [][]byte {
			var pk rtp.Packet
			if err := pk.Unmarshal(p.packet(nil, testPT)); err != nil {
				t.Fatal(err)
			}
			mut(&pk)
			b, err := pk.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			return [][]byte{b}
		}
	}
	tests := []struct {
		name   string
		secure bool
		build  func(p *rawPeer) [][]byte // the last datagram is judged
		want   receiveVerdict
	}{
		{name: "valid rtp", build: func(p *rawPeer) [][]byte { return [][]byte{p.packet(nil, testPT)} }, want: verdictAccepted},
		{name: "valid srtp", secure: true, build: func(p *rawPeer) [][]byte { return [][]byte{p.packet(p.ctx, testPT)} }, want: verdictAccepted},
		{name: "empty", build: func(*rawPeer) [][]byte { return [][]byte{{}} }, want: verdictMalformed},
		{name: "garbage", build: func(*rawPeer) [][]byte { return [][]byte{[]byte("GET / HTTP/1.1\r\n\r\n")} }, want: verdictMalformed},
		{name: "rtp version 1", build: plainRTP(func(p *rtp.Packet) { p.Version = 1 }), want: verdictMalformed},
		{name: "csrc count beyond the packet", build: func(p *rawPeer) [][]byte {
			b := p.packet(nil, testPT)[:12]
			b[0] |= 0x0f
			return [][]byte{b}
		}, want: verdictMalformed},
		{name: "padding longer than the payload", build: func(p *rawPeer) [][]byte {
			b := p.packet(nil, testPT)[:16]
			b[0] |= 0x20
			b[len(b)-1] = 200
			return [][]byte{b}
		}, want: verdictMalformed},
		{name: "valid padding", build: plainRTP(func(p *rtp.Packet) {
			p.Padding = true
			p.PaddingSize = 4
		}), want: verdictAccepted},
		{name: "wrong payload type", build: func(p *rawPeer) [][]byte { return [][]byte{p.packet(nil, 8)} }, want: verdictWrongPayloadType},
		{name: "srtp too short for the tag", secure: true, build: func(p *rawPeer) [][]byte {
			return [][]byte{p.packet(p.ctx, testPT)[:15]}
		}, want: verdictMalformed},
		{name: "srtp wrong key", secure: true, build: func(p *rawPeer) [][]byte {
			return [][]byte{p.packet(p.context(mustKeys(t)), testPT)}
		}, want: verdictAuthFailed},
		{name: "srtp tampered payload", secure: true, build: func(p *rawPeer) [][]byte {
			b := p.packet(p.ctx, testPT)
			b[20] ^= 1
			return [][]byte{b}
		}, want: verdictAuthFailed},
		{name: "srtp plain rtp", secure: true, build: func(p *rawPeer) [][]byte { return [][]byte{p.packet(nil, testPT)} }, want: verdictAuthFailed},
		{name: "srtp replay", secure: true, build: func(p *rawPeer) [][]byte {
			b := p.packet(p.ctx, testPT)
			return [][]byte{b, append([]byte(nil), b...)}
		}, want: verdictReplayed},
		{name: "srtp wrong payload type is authenticated first", secure: true, build: func(p *rawPeer) [][]byte {
			return [][]byte{p.packet(p.ctx, 0)}
		}, want: verdictWrongPayloadType},
		{name: "srtp cryptex header extension", secure: true, build: func(p *rawPeer) [][]byte {
			b := p.packet(p.ctx, testPT)
			// Mark a 0-length extension with the cryptex profile.
			hdr := append([]byte(nil), b[:12]...)
			hdr[0] |= 0x10
			hdr = append(hdr, 0xC0, 0xDE, 0, 0)
			return [][]byte{append(hdr, b[12:]...)}
		}, want: verdictMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var keys *Keys
			if tt.secure {
				keys = mustKeys(t)
			}
			p := newRawPeer(t, "127.0.0.1", keys)
			eng := newTestEngine(t, keys, nil)
			dgs := tt.build(p)
			var got receiveVerdict
			for _, d := range dgs {
				got = eng.recv.receive(d, time.Now())
			}
			if got != tt.want {
				t.Fatalf("verdict %v, want %v", got, tt.want)
			}
		})
	}
}

// TestReceiveAllocs proves the per-packet receive path (parse, SRTP
// authenticate and decrypt, jitter buffer, decode, sink) allocates nothing.
func TestReceiveAllocs(t *testing.T) {
	tests := []struct {
		name   string
		secure bool
	}{
		{name: "rtp"},
		{name: "srtp", secure: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var keys *Keys
			if tt.secure {
				keys = mustKeys(t)
			}
			p := newRawPeer(t, "127.0.0.1", keys)
			const runs = 500
			pkts := make([][]byte, runs+2)
			for i := range pkts {
				pkts[i] = p.packet(p.ctx, testPT)
			}
			sink := &countingSink{}
			eng := newTestEngine(t, keys, sink)
			buf := make([]byte, 2048)
			at := time.Unix(1_700_000_000, 0)
			i := 0
			step := func() {
				n := copy(buf, pkts[i])
				i++
				if v := eng.recv.receive(buf[:n], at); v != verdictAccepted {
					t.Fatalf("packet %d: %v", i, v)
				}
				eng.playout(at)
				at = at.Add(20 * time.Millisecond)
			}
			step() // warm up: first source, SRTP state
			if allocs := testing.AllocsPerRun(runs, step); allocs != 0 {
				t.Fatalf("receive path allocates %.1f times per packet, want 0", allocs)
			}
			if sink.n == 0 {
				t.Fatal("nothing was played")
			}
		})
	}
}

// TestRemoteROCStaleByMoreThanHalf: the index a session is handed (B's
// session parameters at step 3 of a pull, or what a device that never
// heard the stream passed on) may be older than the stream by more than
// half the sequence space, where RFC 3711 §3.3.1's estimate is one wrap
// short. The receiver tries one more wrap for the handed stream, so it
// still authenticates; a forged packet costs two authentication checks,
// and a stream two wraps ahead is still refused (the bound).
func TestRemoteROCStaleByMoreThanHalf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		handed   ROC
		roc      uint32 // the stream's true counter...
		seq      uint16 // ...and sequence number at the session's first packet
		accepted bool
	}{
		{"estimate says no wrap, one happened", ROC{SSRC: 0xfeed, ROC: 0, Seq: 100, HasSeq: true}, 1, 40000, true},
		{"estimate from the second half says no wrap, one happened", ROC{SSRC: 0xfeed, ROC: 2, Seq: 40000, HasSeq: true}, 3, 20000, true},
		{"counter only, one wrap since", ROC{SSRC: 0xfeed, ROC: 0}, 1, 5, true},
		{"two wraps beyond the estimate", ROC{SSRC: 0xfeed, ROC: 0, Seq: 100, HasSeq: true}, 2, 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			keys := mustKeys(t)
			p := newRawPeer(t, "127.0.0.1", keys)
			p.ctx.SetROC(p.hdr.SSRC, tc.roc)
			p.hdr.SequenceNumber = tc.seq
			handed := tc.handed
			eng, err := newEngine(testSettings(t, Config{SendKeys: mustKeys(t), RecvKeys: keys, RemoteROC: &handed}), 99)
			if err != nil {
				t.Fatal(err)
			}
			r := eng.recv
			// A forged packet of the handed stream (another key) first.
			if v := r.receive(p.packet(p.context(mustKeys(t)), testPT), time.Now()); v != verdictAuthFailed {
				t.Fatalf("forged packet: %v, want %v", v, verdictAuthFailed)
			}
			forged := r.retries
			if got, ok := r.handedROC(); !ok || got != handed {
				t.Fatalf("after a forged packet the handed index is %+v %v, want %+v", got, ok, handed)
			}
			want := verdictAuthFailed
			if tc.accepted {
				want = verdictAccepted
			}
			for i := range 3 {
				if v := r.receive(p.packet(p.ctx, testPT), time.Now()); v != want {
					t.Fatalf("packet %d of the stream at counter %d: %v, want %v", i, tc.roc, v, want)
				}
			}
			if forged != 1 {
				t.Fatalf("a forged packet cost %d extra checks, want 1", forged)
			}
			if !tc.accepted {
				if r.retries != 4 || r.packets != 0 {
					t.Fatalf("retries %d (want one per packet), %d packets accepted", r.retries, r.packets)
				}
				return
			}
			// Only the first packet of the stream needed the second check;
			// pion follows the stream from there.
			if r.retries != 2 {
				t.Fatalf("%d extra checks, want 2 (the forged packet, the stream's first)", r.retries)
			}
			// The forged packet took tc.seq, the stream tc.seq+1..+3.
			wantIdx := ROC{SSRC: 0xfeed, ROC: tc.roc, Seq: tc.seq + 3, HasSeq: true}
			if got, ok := r.index(0xfeed); !ok || got != wantIdx {
				t.Fatalf("index %+v %v, want %+v", got, ok, wantIdx)
			}
		})
	}
}

// BenchmarkReceiveForged is what a forged SRTP packet costs the receiver
// (parse and authentication check; it is dropped): of a stream not heard
// yet (one check), and of the handed stream before its first packet
// authenticated (two: the estimated counter and the next one).
func BenchmarkReceiveForged(b *testing.B) {
	for _, bc := range []struct {
		name   string
		handed bool
	}{{"unheard stream", false}, {"handed stream", true}} {
		b.Run(bc.name, func(b *testing.B) {
			keys := mustKeys(b)
			p := newRawPeer(b, "127.0.0.1", keys)
			cfg := Config{SendKeys: mustKeys(b), RecvKeys: keys}
			if bc.handed {
				cfg.RemoteROC = &ROC{SSRC: p.hdr.SSRC, ROC: 0, Seq: 65529, HasSeq: true}
			}
			eng, err := newEngine(testSettings(b, cfg), 99)
			if err != nil {
				b.Fatal(err)
			}
			forged := p.packet(p.context(mustKeys(b)), testPT)
			buf := make([]byte, len(forged))
			b.ReportAllocs()
			for b.Loop() {
				copy(buf, forged)
				if v := eng.recv.receive(buf, time.Time{}); v != verdictAuthFailed {
					b.Fatalf("verdict %v", v)
				}
			}
			b.ReportMetric(float64(eng.recv.retries)/float64(eng.recv.authFailed), "retries/op")
		})
	}
}
