package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pion/rtp"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/wire"
)

func TestTelephoneEventPayload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		b    []byte
		want telephoneEvent
		err  bool
	}{
		{"start of 5", []byte{5, 10, 0, 160}, telephoneEvent{Event: 5, Volume: 10, Duration: 160}, false},
		{"end of #", []byte{11, 0x80 | 10, 0x03, 0x20}, telephoneEvent{Event: 11, End: true, Volume: 10, Duration: 800}, false},
		{"reserved bit ignored", []byte{1, 0x40 | 7, 0, 1}, telephoneEvent{Event: 1, Volume: 7, Duration: 1}, false},
		{"extra bytes ignored", []byte{2, 10, 0, 80, 9, 9}, telephoneEvent{Event: 2, Volume: 10, Duration: 80}, false},
		{"short", []byte{1, 10, 0}, telephoneEvent{}, true},
		{"empty", nil, telephoneEvent{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseTelephoneEvent(tt.b)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("parse(% x) = %+v, %v; want %+v, err %v", tt.b, got, err, tt.want, tt.err)
			}
			if err != nil {
				if !errors.Is(err, ErrBadTelephoneEvent) {
					t.Errorf("error %v is not ErrBadTelephoneEvent", err)
				}
				return
			}
			again, _ := parseTelephoneEvent(got.appendTo(nil))
			if again != got {
				t.Errorf("round trip %+v -> %+v", got, again)
			}
		})
	}
}

// eventPacket is one RFC 4733 packet as a phone sends it.
func eventPacket(seq uint16, ts uint32, marker bool, ev uint8, end bool, dur uint16) rtp.Packet {
	return rtp.Packet{
		Header:  rtp.Header{Version: 2, PayloadType: 101, SequenceNumber: seq, Timestamp: ts, Marker: marker, SSRC: 7},
		Payload: telephoneEvent{Event: ev, End: end, Volume: 10, Duration: dur}.appendTo(nil),
	}
}

// phoneDigit returns the packets of one key press as RFC 4733 §2.5.1 says:
// start with the marker, updates every 20 ms, the end three times.
func phoneDigit(seq *uint16, ts uint32, ev uint8, durMS int) []rtp.Packet {
	total := uint16(durMS * 8)
	var out []rtp.Packet
	for d := uint16(160); ; d += 160 {
		*seq++
		if d >= total {
			for range 3 {
				out = append(out, eventPacket(*seq, ts, false, ev, true, total))
				*seq++
			}
			return out
		}
		out = append(out, eventPacket(*seq, ts, d == 160, ev, false, d))
	}
}

func receive(t *testing.T, r *dtmfReceiver, pkts []rtp.Packet) string {
	t.Helper()
	var b strings.Builder
	for _, p := range pkts {
		ds, err := r.packet(&p.Header, p.Payload)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			b.WriteByte(d.digit)
		}
	}
	return b.String()
}

func TestDTMFReceiverDeduplicates(t *testing.T) {
	t.Parallel()
	var seq uint16
	var r dtmfReceiver
	var pkts []rtp.Packet
	pkts = append(pkts, phoneDigit(&seq, 1000, 1, 100)...)
	pkts = append(pkts, phoneDigit(&seq, 3000, 1, 100)...) // the same key again: a new timestamp
	pkts = append(pkts, phoneDigit(&seq, 5000, 11, 60)...)
	if got := receive(t, &r, pkts); got != "11#" {
		t.Fatalf("digits %q, want 11# (three end packets each, one digit each)", got)
	}

	t.Run("durations", func(t *testing.T) {
		var seq uint16
		var r dtmfReceiver
		var ds []dtmfDigit
		for _, p := range phoneDigit(&seq, 0, 12, 250) {
			got, _ := r.packet(&p.Header, p.Payload)
			ds = append(ds, got...)
		}
		if len(ds) != 1 || ds[0].digit != 'A' || ds[0].durationMS != 250 {
			t.Fatalf("got %+v, want A of 250 ms", ds)
		}
	})
	t.Run("all end packets lost", func(t *testing.T) {
		var seq uint16
		var r dtmfReceiver
		first := phoneDigit(&seq, 100, 7, 100)
		first = first[:len(first)-3] // the network lost the three ends
		pkts := append(first, phoneDigit(&seq, 2000, 8, 100)...)
		if got := receive(t, &r, pkts); got != "78" {
			t.Fatalf("digits %q, want 78: a digit whose end was lost is reported when the next one starts", got)
		}
	})
	t.Run("reordered end before an update", func(t *testing.T) {
		var r dtmfReceiver
		pkts := []rtp.Packet{
			eventPacket(1, 50, true, 3, false, 160),
			eventPacket(3, 50, false, 3, true, 480),
			eventPacket(2, 50, false, 3, false, 320), // late update
			eventPacket(4, 50, false, 3, true, 480),
			eventPacket(5, 50, false, 3, true, 480),
		}
		if got := receive(t, &r, pkts); got != "3" {
			t.Fatalf("digits %q, want 3", got)
		}
	})
	t.Run("not a DTMF event", func(t *testing.T) {
		var seq uint16
		var r dtmfReceiver
		if got := receive(t, &r, phoneDigit(&seq, 100, 16, 100)); got != "" { // flash
			t.Fatalf("flash reported as %q", got)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		var r dtmfReceiver
		h := rtp.Header{Timestamp: 1}
		if _, err := r.packet(&h, []byte{1, 2}); !errors.Is(err, ErrBadTelephoneEvent) {
			t.Fatalf("err = %v", err)
		}
	})
}

// sentEvent is one packet the sender produced for a frame.
type sentEvent struct {
	ts     uint32
	marker bool
	ev     telephoneEvent
}

func TestDTMFSenderPackets(t *testing.T) {
	t.Parallel()
	var s dtmfSender
	s.enqueue(dtmfDigit{digit: '1', durationMS: 100})
	s.enqueue(dtmfDigit{digit: '#', durationMS: 40})
	var stream uint32 = 90000
	var got []sentEvent
	audio := 0
	var audioAt []uint32
	for range 20 {
		p, ts, m, ok := s.next(stream, 160)
		if ok {
			ev, err := parseTelephoneEvent(p)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, sentEvent{ts, m, ev})
		} else {
			audio++
			audioAt = append(audioAt, stream)
		}
		stream += 160
	}
	want := []sentEvent{
		// digit 1: 100 ms = 800 units; updates each 20 ms, the end three times
		{90000, true, telephoneEvent{Event: 1, Volume: 10, Duration: 160}},
		{90000, false, telephoneEvent{Event: 1, Volume: 10, Duration: 320}},
		{90000, false, telephoneEvent{Event: 1, Volume: 10, Duration: 480}},
		{90000, false, telephoneEvent{Event: 1, Volume: 10, Duration: 640}},
		{90000, false, telephoneEvent{Event: 1, End: true, Volume: 10, Duration: 800}},
		{90000, false, telephoneEvent{Event: 1, End: true, Volume: 10, Duration: 800}},
		{90000, false, telephoneEvent{Event: 1, End: true, Volume: 10, Duration: 800}},
		// two frames of audio, then #: 40 ms = 320 units
		{90000 + 9*160, true, telephoneEvent{Event: 11, Volume: 10, Duration: 160}},
		{90000 + 9*160, false, telephoneEvent{Event: 11, End: true, Volume: 10, Duration: 320}},
		{90000 + 9*160, false, telephoneEvent{Event: 11, End: true, Volume: 10, Duration: 320}},
		{90000 + 9*160, false, telephoneEvent{Event: 11, End: true, Volume: 10, Duration: 320}},
	}
	if len(got) != len(want) {
		t.Fatalf("%d event packets, want %d:\n%+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("packet %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if audioAt[0] != 90000+7*160 || audioAt[1] != 90000+8*160 || audio != 9 {
		t.Errorf("audio frames at %v (%d), want the gap at %d and %d", audioAt, audio, 90000+7*160, 90000+8*160)
	}
	if n := s.sent.Load(); n != 2 {
		t.Errorf("sent = %d, want 2", n)
	}
	// A receiver reads exactly the queued digits back.
	var r dtmfReceiver
	var digits []byte
	for i, p := range got {
		h := rtp.Header{Timestamp: p.ts, Marker: p.marker, SequenceNumber: uint16(i)}
		ds, _ := r.packet(&h, p.ev.appendTo(nil))
		for _, d := range ds {
			digits = append(digits, d.digit)
		}
	}
	if string(digits) != "1#" {
		t.Errorf("receiver read %q back", digits)
	}
}

func TestDTMFSenderQueueBound(t *testing.T) {
	t.Parallel()
	var s dtmfSender
	for i := range maxQueuedDigits {
		if !s.enqueue(dtmfDigit{digit: '1', durationMS: 100}) {
			t.Fatalf("digit %d refused", i)
		}
	}
	if s.enqueue(dtmfDigit{digit: '1', durationMS: 100}) {
		t.Fatal("queue grew past its bound")
	}
}

// digitSink collects the digits a leg reports.
type digitSink struct {
	mu sync.Mutex
	ds []dtmfDigit
}

func (s *digitSink) add(d dtmfDigit) { s.mu.Lock(); s.ds = append(s.ds, d); s.mu.Unlock() }
func (s *digitSink) digits() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b []byte
	for _, d := range s.ds {
		b = append(b, d.digit)
	}
	return string(b)
}

// TestLegDTMF runs both directions through a real leg on loopback: a
// phone's RFC 4733 packets become digits, and digits queued on the leg
// reach the phone as RFC 4733 packets on the audio stream's SSRC.
func TestLegDTMF(t *testing.T) {
	t.Parallel()
	l, err := openLeg(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	phone := newRTPPeer(t)
	pcmu, _ := codecs.DefaultRegistry().Lookup("PCMU")
	l.setRemote(pcmu, 0, 101, phone.addr(), netip.Addr{}, true)
	var sink digitSink
	l.onDTMF(sink.add)

	// Phone -> leg.
	var seq uint16
	var pkts []rtp.Packet
	pkts = append(pkts, phoneDigit(&seq, 8000, 4, 100)...)
	pkts = append(pkts, phoneDigit(&seq, 16000, 2, 100)...)
	pkts = append(pkts, phoneDigit(&seq, 24000, 10, 100)...)
	for _, p := range pkts {
		b, _ := p.Marshal()
		if _, err := phone.conn.WriteToUDPAddrPort(b, l.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	// The digits are complete at the first end packet of '*'; its
	// retransmitted end packets may still be in the socket: wait for the
	// count too.
	for (sink.digits() != "42*" || l.stats.Events.Load() < uint64(len(pkts))) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := sink.digits(); got != "42*" {
		t.Fatalf("leg reported %q, want 42*", got)
	}
	if n := l.stats.Events.Load(); n != uint64(len(pkts)) {
		t.Errorf("events counted %d, want %d", n, len(pkts))
	}

	// Leg -> phone: the media engine calls WriteFrame once per ptime.
	if err := l.queueDTMF("9#", 60); err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, 160)
	var r dtmfReceiver
	var got []byte
	var ssrcs = map[uint32]bool{}
	buf := make([]byte, 1500)
	lastSeq := -1
	for i := 0; i < 40 && string(got) != "9#"; i++ {
		if err := l.WriteFrame(pcm); err != nil {
			t.Fatal(err)
		}
		_ = phone.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := phone.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		var p rtp.Packet
		if err := p.Unmarshal(buf[:n]); err != nil {
			t.Fatal(err)
		}
		ssrcs[p.SSRC] = true
		if lastSeq >= 0 && p.SequenceNumber != uint16(lastSeq+1) {
			t.Errorf("sequence %d after %d: events and audio share one sequence", p.SequenceNumber, lastSeq)
		}
		lastSeq = int(p.SequenceNumber)
		if p.PayloadType != 101 {
			continue
		}
		ds, err := r.packet(&p.Header, p.Payload)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			got = append(got, d.digit)
			if d.durationMS != 60 {
				t.Errorf("digit %c lasts %d ms, want 60", d.digit, d.durationMS)
			}
		}
	}
	if string(got) != "9#" {
		t.Fatalf("phone decoded %q, want 9#", got)
	}
	if len(ssrcs) != 1 {
		t.Errorf("%d SSRCs: events must use the audio stream's", len(ssrcs))
	}
	if n := l.dtmf.tx.sent.Load(); n != 2 {
		t.Errorf("sent %d digits, want 2", n)
	}
	if l.dtmf.received.Load() != 3 {
		t.Errorf("received %d, want 3", l.dtmf.received.Load())
	}
}

func TestLegDTMFWithoutTelephoneEvent(t *testing.T) {
	t.Parallel()
	l, err := openLeg(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	pcmu, _ := codecs.DefaultRegistry().Lookup("PCMU")
	l.setRemote(pcmu, 0, -1, newRTPPeer(t).addr(), netip.Addr{}, true)
	err = l.queueDTMF("12", 100)
	if !errors.Is(err, ErrNoTelephoneEvent) || !strings.Contains(err.Error(), "did not offer telephone-event") {
		t.Fatalf("queueDTMF = %v, want ErrNoTelephoneEvent", err)
	}
	if l.dtmf.dropped.Load() != 0 || len(l.dtmf.tx.queue) != 0 {
		t.Errorf("dropped = %d, queued %d: the bridge sends these by INFO instead", l.dtmf.dropped.Load(), len(l.dtmf.tx.queue))
	}
}

// FuzzDTMFReceiver: any sequence of packets (4-byte timestamp, then the
// payload, per chunk) never panics; every digit reported is a DTMF digit;
// no more digits than packets; a malformed payload is ErrBadTelephoneEvent.
func FuzzDTMFReceiver(f *testing.F) {
	var seq uint16
	var seed bytes.Buffer
	for _, p := range phoneDigit(&seq, 800, 5, 100) {
		_ = binary.Write(&seed, binary.BigEndian, p.Timestamp)
		seed.WriteByte(byte(len(p.Payload)))
		seed.Write(p.Payload)
	}
	f.Add(seed.Bytes())
	f.Add([]byte{0, 0, 0, 1, 2, 1, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		var r dtmfReceiver
		packets, digits := 0, 0
		for len(data) >= 5 {
			ts := binary.BigEndian.Uint32(data)
			n := min(int(data[4]), len(data)-5)
			payload := data[5 : 5+n]
			data = data[5+n:]
			packets++
			h := rtp.Header{Timestamp: ts}
			ds, err := r.packet(&h, payload)
			if err != nil {
				if !errors.Is(err, ErrBadTelephoneEvent) || len(payload) >= eventPayloadLen {
					t.Fatalf("packet(% x) = %v", payload, err)
				}
				continue
			}
			for _, d := range ds {
				if wire.DTMFEvent(d.digit) < 0 || d.durationMS < 0 || d.durationMS > 65535*1000/eventClockRate {
					t.Fatalf("reported %+v", d)
				}
			}
			digits += len(ds)
		}
		if digits > packets {
			t.Fatalf("%d digits from %d packets", digits, packets)
		}
	})
}

func TestParseInfoDTMF(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, ct, body string
		want           dtmfDigit
		err            string
	}{
		{"relay", "application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", dtmfDigit{'5', 160}, ""},
		{"relay LF, spaces, case", "Application/DTMF-Relay; charset=x", "signal = #\nDURATION= 250\n", dtmfDigit{'#', 250}, ""},
		{"relay without duration", "application/dtmf-relay", "Signal=*", dtmfDigit{'*', 100}, ""},
		{"relay lower-case letter", "application/dtmf-relay", "Signal=b\r\n", dtmfDigit{'B', 100}, ""},
		{"bare digit", "application/dtmf", "7\r\n", dtmfDigit{'7', 100}, ""},
		{"unknown keys ignored", "application/dtmf-relay", "Signal=1\r\nVolume=10\r\n", dtmfDigit{'1', 100}, ""},
		{"no signal", "application/dtmf-relay", "Duration=100\r\n", dtmfDigit{}, `signal ""`},
		{"flash", "application/dtmf-relay", "Signal=16\r\n", dtmfDigit{}, `signal "16"`},
		{"not a digit", "application/dtmf-relay", "Signal=x\r\n", dtmfDigit{}, `signal "x" is not a DTMF digit`},
		{"bad duration", "application/dtmf-relay", "Signal=1\r\nDuration=-5\r\n", dtmfDigit{}, `duration "-5"`},
		{"not key=value", "application/dtmf-relay", "Signal=1\r\ngarbage\r\n", dtmfDigit{}, `line "garbage"`},
		{"other type", "application/sdp", "v=0", dtmfDigit{}, "content type"},
		{"no type", "", "Signal=1", dtmfDigit{}, "content type"},
		{"huge", "application/dtmf", strings.Repeat("1", maxInfoBody+1), dtmfDigit{}, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseInfoDTMF(tt.ct, []byte(tt.body))
			if tt.err == "" {
				if err != nil || got != tt.want {
					t.Fatalf("parse = %+v, %v; want %+v", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("parse = %+v, %v; want an error with %q", got, err, tt.err)
			}
		})
	}
	if _, err := parseInfoDTMF("text/plain", nil); !errors.Is(err, errInfoType) {
		t.Errorf("other type: %v, want errInfoType (415)", err)
	}
}

// FuzzParseInfoDTMF: any INFO body never panics; a parsed digit is a DTMF
// digit with a positive duration; an error message is valid UTF-8 and
// bounded (it goes into a SIP reason phrase).
func FuzzParseInfoDTMF(f *testing.F) {
	f.Add("application/dtmf-relay", []byte("Signal=5\r\nDuration=160\r\n"))
	f.Add("application/dtmf", []byte("#"))
	f.Add("application/dtmf-relay", []byte("signal=\xff\r\n"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		d, err := parseInfoDTMF(ct, body)
		if err != nil {
			if len(err.Error()) > 300 || !utf8.ValidString(err.Error()) {
				t.Fatalf("error %q", err)
			}
			return
		}
		if wire.DTMFEvent(d.digit) < 0 || d.durationMS <= 0 {
			t.Fatalf("parsed %+v", d)
		}
	})
}

// BenchmarkLegWriteFrame is the SIP leg's send path per 20 ms frame, with
// no digit to play (the cost DTMF adds to every audio frame: one atomic
// load) and while digits play (RFC 4733 packets in place of audio).
func BenchmarkLegWriteFrame(b *testing.B) {
	for _, digits := range []bool{false, true} {
		name := "audio"
		if digits {
			name = "playing-digits"
		}
		b.Run(name, func(b *testing.B) {
			l, err := openLeg(netip.MustParseAddr("127.0.0.1"))
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			defer sink.Close()
			pcmu, _ := codecs.DefaultRegistry().Lookup("PCMU")
			l.setRemote(pcmu, 0, 101, sink.LocalAddr().(*net.UDPAddr).AddrPort(), netip.Addr{}, true)
			pcm := make([]int16, 160)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if digits && l.dtmf.tx.queued.Load() == 0 {
					l.dtmf.tx.enqueue(dtmfDigit{digit: '5', durationMS: 100})
				}
				if err := l.WriteFrame(pcm); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDTMFReceiverPacket is the phone-side decoding of one RFC 4733
// packet (a 100 ms digit is 7 of them).
func BenchmarkDTMFReceiverPacket(b *testing.B) {
	var seq uint16
	var pkts []rtp.Packet
	for i := range 100 {
		pkts = append(pkts, phoneDigit(&seq, uint32(i)*2000, uint8(i%16), 100)...)
	}
	var r dtmfReceiver
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := &pkts[i%len(pkts)]
		if _, err := r.packet(&p.Header, p.Payload); err != nil {
			b.Fatal(err)
		}
	}
}
