package gateway

import (
	"bytes"
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/media"
)

// countingCodec is a real G.711 codec that counts Encode and Decode calls.
type countingCodec struct {
	codecs.Codec
	enc, dec atomic.Int64
}

func (c *countingCodec) Encode(dst []byte, pcm []int16) (int, error) {
	c.enc.Add(1)
	return c.Codec.Encode(dst, pcm)
}

func (c *countingCodec) Decode(dst []int16, p []byte) (int, error) {
	c.dec.Add(1)
	return c.Codec.Decode(dst, p)
}

var (
	_ audio.PayloadSource = (*leg)(nil)
	_ audio.PayloadSink   = (*leg)(nil)
)

// sendPayload sends one RTP packet with payload from the phone.
func (p *rtpPeer) sendPayload(to netip.AddrPort, pt uint8, payload []byte) {
	p.t.Helper()
	p.seq++
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: p.seq, Timestamp: uint32(p.seq) * 160, SSRC: 7}, Payload: payload}
	b, err := pkt.Marshal()
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.conn.WriteToUDPAddrPort(b, to); err != nil {
		p.t.Fatal(err)
	}
}

// read returns the next RTP packet the phone receives.
func (p *rtpPeer) read(d time.Duration) (rtp.Packet, bool) {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 1500)
	n, _, err := p.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		return rtp.Packet{}, false
	}
	var pkt rtp.Packet
	if err := pkt.Unmarshal(buf[:n]); err != nil {
		p.t.Fatal(err)
	}
	return pkt, true
}

func frameOf(v byte, n int) []byte { return bytes.Repeat([]byte{v}, n) }

// Same codec both sides: the phone's payloads reach the P2P side as they
// came (ReadPayload), and the P2P side's payloads reach the phone as they
// came (WritePayload), under the leg's own sequence numbers and
// timestamps. No Decode or Encode happens.
func TestLegPassthrough(t *testing.T) {
	t.Parallel()
	l, err := openLeg(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	codec := &countingCodec{Codec: codecs.PCMU()}
	phone := newRTPPeer(t)
	l.setRemote(codec, 0, -1, phone.addr(), netip.MustParseAddr("127.0.0.1"), true)

	// The phone talks: 30 ms packets (240 octets), the P2P side takes 20 ms
	// frames: G.711 repacketizes without decoding.
	const packets = 6
	for k := range packets {
		phone.sendPayload(l.LocalAddr(), 0, frameOf(byte(0x10+k), 240))
	}
	eventually(t, "the leg to take the phone's packets", func() bool { return l.stats.Received.Load() == packets })
	var got []byte
	dst := make([]byte, 400)
	for range packets * 240 / 160 {
		n, ok, err := l.ReadPayload(codecs.PCMU(), 160, dst)
		if err != nil || !ok || n != 160 {
			t.Fatalf("ReadPayload = %d, %v, %v; want a 160-octet frame", n, ok, err)
		}
		got = append(got, dst[:n]...)
	}
	var want []byte
	for k := range packets {
		want = append(want, frameOf(byte(0x10+k), 240)...)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the octets read are not the phone's, in order")
	}
	if _, ok, _ := l.ReadPayload(codecs.PCMU(), 160, dst); ok {
		t.Fatal("ReadPayload gave a frame from an empty buffer")
	}

	// The P2P side talks.
	var first rtp.Header
	for k := range 3 {
		ok, err := l.WritePayload(codecs.PCMU(), 160, frameOf(byte(0x40+k), 160))
		if err != nil || !ok {
			t.Fatalf("WritePayload = %v, %v", ok, err)
		}
		p, heard := phone.read(time.Second)
		if !heard {
			t.Fatal("the phone heard nothing")
		}
		if k == 0 {
			first = p.Header
		}
		if p.PayloadType != 0 || !bytes.Equal(p.Payload, frameOf(byte(0x40+k), 160)) {
			t.Fatalf("phone got pt %d payload %x..., want pt 0 and the frame as sent", p.PayloadType, p.Payload[:2])
		}
		if p.SequenceNumber != first.SequenceNumber+uint16(k) || p.Timestamp != first.Timestamp+uint32(160*k) || p.SSRC != first.SSRC {
			t.Fatalf("packet %d: ssrc %x seq %d ts %d: not the leg's continuous stream", k, p.SSRC, p.SequenceNumber, p.Timestamp)
		}
	}
	if e, d := codec.enc.Load(), codec.dec.Load(); e != 0 || d != 0 {
		t.Fatalf("passthrough made %d Encode and %d Decode calls, want none", e, d)
	}
	if got := l.stats.Passed.Load(); got != packets*240/160+3 {
		t.Fatalf("Passed = %d, want %d", got, packets*240/160+3)
	}
}

// Different codecs (PCMU phone, PCMA call): the leg declines payloads and
// the PCM path transcodes: ReadFrame decodes the phone's µ-law, WriteFrame
// encodes to µ-law.
func TestLegTranscode(t *testing.T) {
	t.Parallel()
	l, err := openLeg(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	pcmu := codecs.PCMU()
	phone := newRTPPeer(t)
	l.setRemote(pcmu, 0, -1, phone.addr(), netip.MustParseAddr("127.0.0.1"), true)
	// A µ-law ramp: every octet value.
	payload := make([]byte, 160)
	for i := range payload {
		payload[i] = byte(i)
	}
	for range 3 {
		phone.sendPayload(l.LocalAddr(), 0, payload)
	}
	eventually(t, "the leg to take the phone's packets", func() bool { return l.stats.Received.Load() == 3 })
	if _, ok, _ := l.ReadPayload(codecs.PCMA(), 160, make([]byte, 400)); ok {
		t.Fatal("ReadPayload passed µ-law octets to a PCMA call")
	}
	pcm := make([]int16, 160)
	if err := l.ReadFrame(pcm); err != nil {
		t.Fatal(err)
	}
	want := make([]int16, 160)
	if _, err := pcmu.Decode(want, payload); err != nil {
		t.Fatal(err)
	}
	if !slicesEqual(pcm, want) {
		t.Fatalf("ReadFrame gave %v..., want the decoded µ-law %v...", pcm[:4], want[:4])
	}
	// PCMA frames from the P2P side are declined; the engine decodes them
	// and WriteFrame encodes µ-law for the phone.
	if ok, _ := l.WritePayload(codecs.PCMA(), 160, make([]byte, 160)); ok {
		t.Fatal("WritePayload passed A-law to a µ-law phone")
	}
	if err := l.WriteFrame(want); err != nil {
		t.Fatal(err)
	}
	p, heard := phone.read(time.Second)
	if !heard {
		t.Fatal("the phone heard nothing")
	}
	reenc := make([]byte, 160)
	if _, err := pcmu.Encode(reenc, want); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Payload, reenc) {
		t.Fatalf("phone got %x..., want the µ-law encoding %x...", p.Payload[:4], reenc[:4])
	}
	if l.stats.Passed.Load() != 0 {
		t.Fatal("Passed counted a transcoded frame")
	}
}

// A re-INVITE that changes the phone's codec drops what is buffered in
// the old one: µ-law octets must not be played as A-law.
func TestLegCodecChangeDropsBuffer(t *testing.T) {
	t.Parallel()
	l, err := openLeg(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	phone := newRTPPeer(t)
	lo := netip.MustParseAddr("127.0.0.1")
	l.setRemote(codecs.PCMU(), 0, -1, phone.addr(), lo, true)
	for range 4 {
		phone.sendPayload(l.LocalAddr(), 0, frameOf(0x11, 160))
	}
	eventually(t, "the leg to take the phone's packets", func() bool { return l.stats.Received.Load() == 4 })
	l.setRemote(codecs.PCMA(), 8, -1, phone.addr(), lo, true)
	if _, ok, _ := l.ReadPayload(codecs.PCMA(), 160, make([]byte, 400)); ok {
		t.Fatal("µ-law octets buffered before the re-INVITE were passed as A-law")
	}
}

// Through real media sessions on loopback: phone (plain RTP) -> leg ->
// P2P session (SRTP, PCMU) -> far P2P session, and back. The far end hears
// the phone's exact audio and the phone gets the far end's exact µ-law,
// with no transcoding in the leg or the gateway's session (Passed and
// PayloadsSent/PayloadsPlayed count, Decode/Encode do not).
func TestLegRelayThroughSession(t *testing.T) {
	t.Parallel()
	l, err := openLeg(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	codec := &countingCodec{Codec: codecs.PCMU()}
	phone := newRTPPeer(t)
	l.setRemote(codec, 0, -1, phone.addr(), netip.MustParseAddr("127.0.0.1"), true)

	k1, err := media.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := media.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	gw, err := media.Open(ctx, media.Config{Local: lo, Codec: codec, Source: l, Sink: l, SendKeys: &k1, RecvKeys: &k2})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	heard := &octetSink{}
	far, err := media.Open(ctx, media.Config{Local: lo, Codec: codecs.PCMU(), Source: &constSource{v: 1000}, Sink: heard, SendKeys: &k2, RecvKeys: &k1})
	if err != nil {
		t.Fatal(err)
	}
	defer far.Close()
	gw.SetRemote(far.LocalAddr())
	far.SetRemote(gw.LocalAddr())
	gw.Start()
	far.Start()

	// The phone talks at 50 packets/s while the far end's packets arrive.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				phone.sendPayload(l.LocalAddr(), 0, frameOf(0x2a, 160))
			}
		}
	}()
	var farFrame []byte
	eventually(t, "the phone to hear the far end", func() bool {
		p, ok := phone.read(time.Second)
		if ok && p.Payload[0] != 0xff { // past the silence before the far end's first frame
			farFrame = p.Payload
			return true
		}
		return false
	})
	eventually(t, "the far end to hear the phone", func() bool { return heard.saw(0x2a) })
	close(stop)
	wg.Wait()

	enc := make([]byte, 160)
	pcm := make([]int16, 160)
	for i := range pcm {
		pcm[i] = 1000
	}
	if _, err := codecs.PCMU().Encode(enc, pcm); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(farFrame, enc) {
		t.Fatalf("phone got %x..., want the far end's µ-law %x...", farFrame[:4], enc[:4])
	}
	st := gw.Stats()
	t.Logf("gateway session: sent %d (%d as payloads), played %d (%d as payloads), concealed %d; leg passed %d; codec encodes %d decodes %d",
		st.PacketsSent, st.PayloadsSent, st.FramesPlayed, st.PayloadsPlayed, st.FramesConcealed, l.stats.Passed.Load(), codec.enc.Load(), codec.dec.Load())
	if st.PayloadsSent == 0 || st.PayloadsPlayed == 0 || l.stats.Passed.Load() == 0 {
		t.Fatal("no frame was relayed as a payload")
	}
	// Encodes happen only for the silence sent before the phone's
	// prebuffer filled or in an underrun (ReadPayload declines); decodes
	// only to conceal a loss. Neither is per relayed packet.
	if n := codec.enc.Load(); uint64(n) != st.PacketsSent-st.PayloadsSent {
		t.Fatalf("%d encodes for %d frames not given as payloads", n, st.PacketsSent-st.PayloadsSent)
	}
	if n := codec.dec.Load(); uint64(n) > st.FramesConcealed {
		t.Fatalf("%d decodes with %d concealed frames", n, st.FramesConcealed)
	}
}

// octetSink records whether a frame decoding to the given µ-law octet
// was played.
type octetSink struct {
	mu   sync.Mutex
	seen [256]bool
}

func (s *octetSink) WriteFrame(pcm []int16) error {
	var b [1]byte
	if _, err := codecs.PCMU().Encode(b[:], pcm[:1]); err != nil {
		return err
	}
	s.mu.Lock()
	s.seen[b[0]] = true
	s.mu.Unlock()
	return nil
}

func (s *octetSink) saw(v byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[v]
}

// constSource is a constant-level Source.
type constSource struct{ v int16 }

func (s *constSource) ReadFrame(pcm []int16) error {
	for i := range pcm {
		pcm[i] = s.v
	}
	return nil
}

func slicesEqual(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
