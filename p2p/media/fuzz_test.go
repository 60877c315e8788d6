package media

import (
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// fuzzKeys are fixed so that the SRTP seeds in testdata are valid packets
// the fuzzer can mutate from.
func fuzzKeys() *Keys {
	var k Keys
	for i := range k.MasterKey {
		k.MasterKey[i] = byte(1 + i)
	}
	for i := range k.MasterSalt {
		k.MasterSalt[i] = byte(101 + i)
	}
	return &k
}

// fuzzStream builds valid packets of the linear test codec for several
// SSRCs, encrypted when ctx is set.
type fuzzStream struct {
	t   *testing.T
	ctx *srtp.Context
	seq map[uint32]uint16
	pcm []int16
}

func newFuzzStream(t *testing.T, keys *Keys) *fuzzStream {
	s := &fuzzStream{t: t, seq: map[uint32]uint16{}, pcm: make([]int16, 160)}
	if keys != nil {
		ctx, err := srtp.CreateContext(keys.MasterKey[:], keys.MasterSalt[:], srtpProfile)
		if err != nil {
			t.Fatal(err)
		}
		s.ctx = ctx
	}
	return s
}

func (s *fuzzStream) next(ssrc uint32) []byte {
	seq := s.seq[ssrc]
	s.seq[ssrc] = seq + 1
	patternFrame(s.pcm, 3, int(seq)+1)
	payload := make([]byte, 320)
	if _, err := testCodec().Encode(payload, s.pcm); err != nil {
		s.t.Fatal(err)
	}
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: testPT, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: ssrc}, Payload: payload}
	b, err := p.Marshal()
	if err != nil {
		s.t.Fatal(err)
	}
	if s.ctx != nil {
		if b, err = s.ctx.EncryptRTP(nil, b, nil); err != nil {
			s.t.Fatal(err)
		}
	}
	return b
}

// FuzzRTPReceive feeds arbitrary datagrams into an established call's
// receive path (as if from the allowed peer address) and checks that
// nothing panics, every datagram gets a verdict, and the call keeps
// playing: a new stream after the input is heard.
func FuzzRTPReceive(f *testing.F) {
	f.Add(false, []byte{})
	f.Add(false, []byte("\x80\x60\x00\x05\x00\x00\x03\x20\x00\x00\x11\x11hello"))
	f.Add(true, []byte("\x80\x60\x00\x05\x00\x00\x03\x20\x00\x00\x11\x11hello and a tag"))
	f.Add(false, []byte("\x8f\x60\x00\x05\x00\x00\x03\x20\x00\x00\x11\x11"))
	f.Add(false, []byte("\xb0\x60\x00\x05\x00\x00\x03\x20\x00\x00\x11\x11\xbe\xde\x00\x01\x10\xff\x00\x00\x01\x02\x03"))
	f.Fuzz(func(t *testing.T, secure bool, data []byte) {
		var keys *Keys
		if secure {
			keys = fuzzKeys()
		}
		sink := &countingSink{}
		eng := newTestEngine(t, keys, sink)
		gen := newFuzzStream(t, keys)
		at := time.Unix(1_700_000_000, 0)
		tick := func() {
			eng.playout(at)
			at = at.Add(20 * time.Millisecond)
		}
		const ssrc1 = 0x1111
		for range 3 {
			eng.recv.receive(gen.next(ssrc1), at)
			tick()
		}

		in := append([]byte(nil), data...)
		if v := eng.recv.receive(in, at); v == verdictUnknown {
			t.Fatalf("no verdict for %x", data)
		}
		tick()

		// The call goes on: a source that is neither current nor a
		// replaced one takes over and is played.
		ssrc2 := uint32(0x2222)
		for ssrc2 == eng.jb.src.ssrc || eng.jb.isRecent(ssrc2) {
			ssrc2++
		}
		played := eng.jb.st.played
		for range 8 {
			if v := eng.recv.receive(gen.next(ssrc2), at); v != verdictAccepted {
				t.Fatalf("valid packet after %x: %v", data, v)
			}
			tick()
		}
		if eng.jb.st.played < played+4 {
			t.Fatalf("playout stopped after %x: %d frames played, want at least %d", data, eng.jb.st.played, played+4)
		}
		if st := eng.stats(); st.RemoteSSRC != ssrc2 {
			t.Fatalf("remote SSRC %#x, want %#x", st.RemoteSSRC, ssrc2)
		}
	})
}
