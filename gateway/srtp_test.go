package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/p2p/wire"
	"github.com/baton-voice/baton/sipbridge/sdp"
)

// srtpMedia is a SIP phone's SRTP media written directly on pion/srtp and
// its own UDP socket (not the gateway's leg code): it plays a PCMU tone
// encrypted with its own key and decrypts and decodes what it receives
// with the key from the gateway's SDP.
type srtpMedia struct {
	t     *testing.T
	conn  *net.UDPConn
	key   []byte
	heard *pcmSink

	mu       sync.Mutex
	remote   netip.AddrPort
	tx, rx   *srtp.Context
	pt       uint8
	seq      uint16
	ts       uint32
	last     []byte // the last SRTP packet sent, for the replay check
	received int
	events   []byte // RFC 4733 event codes received (PT 101), decrypted
	stop     chan struct{}
	done     sync.WaitGroup
}

func newSRTPMedia(t *testing.T, hz float64) *srtpMedia {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	key, err := sdp.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	m := &srtpMedia{t: t, conn: conn, key: key, heard: &pcmSink{}, stop: make(chan struct{})}
	tone, err := audio.NewTone(hz, 8000, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	pcmu := codecs.PCMU()
	m.done.Add(2)
	go func() { // sender, 20 ms frames
		defer m.done.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		frame := make([]int16, 160)
		payload := make([]byte, 160)
		for {
			select {
			case <-m.stop:
				return
			case <-tick.C:
			}
			_ = tone.ReadFrame(frame)
			n, _ := pcmu.Encode(payload, frame)
			m.send(payload[:n], false)
		}
	}()
	go func() { // receiver
		defer m.done.Done()
		buf := make([]byte, 1500)
		pcm := make([]int16, 1500)
		for {
			n, _, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			m.mu.Lock()
			rx := m.rx
			m.mu.Unlock()
			if rx == nil {
				continue
			}
			plain, err := rx.DecryptRTP(nil, buf[:n], nil)
			if err != nil {
				t.Logf("phone: SRTP from the gateway not authentic: %v", err)
				continue
			}
			var p rtp.Packet
			if p.Unmarshal(plain) != nil {
				continue
			}
			if p.PayloadType == 101 && len(p.Payload) >= 4 {
				m.mu.Lock()
				m.events = append(m.events, p.Payload[0])
				m.mu.Unlock()
				continue
			}
			if p.PayloadType != 0 {
				continue
			}
			k, _ := pcmu.Decode(pcm, p.Payload)
			_ = m.heard.WriteFrame(pcm[:k])
			m.mu.Lock()
			m.received++
			m.mu.Unlock()
		}
	}()
	t.Cleanup(func() { close(m.stop); _ = conn.Close(); m.done.Wait() })
	return m
}

// send encrypts and sends one PCMU packet; tamper flips a payload bit
// after encryption (the auth tag no longer matches).
func (m *srtpMedia) send(payload []byte, tamper bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tx == nil || !m.remote.IsValid() {
		return
	}
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: m.pt, SequenceNumber: m.seq, Timestamp: m.ts, SSRC: 0x5e11}, Payload: payload}
	m.seq++
	m.ts += uint32(len(payload))
	plain, err := p.Marshal()
	if err != nil {
		m.t.Error(err)
		return
	}
	out, err := m.tx.EncryptRTP(nil, plain, nil)
	if err != nil {
		m.t.Error(err)
		return
	}
	if tamper {
		out[14] ^= 0x40
	} else {
		m.last = out
	}
	_, _ = m.conn.WriteToUDPAddrPort(out, m.remote)
}

// replay sends the last good packet again.
func (m *srtpMedia) replay() {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, _ = m.conn.WriteToUDPAddrPort(m.last, m.remote)
}

func (m *srtpMedia) port() int { return m.conn.LocalAddr().(*net.UDPAddr).Port }

// offer is the phone's RTP/SAVP offer: a suite the gateway cannot key
// first (tag 1), then AES_CM_128_HMAC_SHA1_80 under tag 2.
func (m *srtpMedia) offer(t *testing.T, key []byte) []byte {
	t.Helper()
	o := &sdp.Offer{SessionID: 9, SessionVersion: 1, Addr: netip.MustParseAddr("127.0.0.1"), Port: m.port(),
		Codecs: []sdp.Codec{{PT: 0, Name: "PCMU", ClockRate: 8000}}, TelephoneEventPT: -1, Direction: sdp.SendRecv, Secure: true,
		Crypto: []sdp.Crypto{{Tag: 1, Suite: "AES_256_CM_HMAC_SHA1_80", Key: append(bytes.Clone(key), key...)}, {Tag: 2, Suite: sdp.AESCM128HMACSHA180, Key: key}}}
	body, err := o.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// use keys the phone from the gateway's SDP: it sends with its own key
// and the negotiated suite, and decrypts with the gateway's key.
func (m *srtpMedia) use(t *testing.T, gw *sdp.Offer, suite sdp.Suite) {
	t.Helper()
	if len(gw.Crypto) != 1 || !gw.Crypto[0].Usable() {
		t.Fatalf("gateway SDP crypto %+v, want one usable", gw.Crypto)
	}
	profile := srtp.ProtectionProfileAes128CmHmacSha1_80
	if suite == sdp.AESCM128HMACSHA132 {
		profile = srtp.ProtectionProfileAes128CmHmacSha1_32
	}
	g := gw.Crypto[0]
	rx, err := srtp.CreateContext(g.MasterKey(), g.MasterSalt(), profile)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := srtp.CreateContext(m.key[:16], m.key[16:], profile)
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.rx, m.tx, m.remote = rx, tx, netip.AddrPortFrom(gw.Addr, uint16(gw.Port))
	m.mu.Unlock()
}

func withSIPSRTP(mode sdp.SRTPMode) func(*Config) { return func(c *Config) { c.SIPSRTP = mode } }

// TestSRTPPhoneCallsSoftphone: under sip.srtp required a phone calls
// bob with an RTP/SAVP offer; the gateway answers the usable a=crypto
// (tag 2) with its own key; the tones cross both ways encrypted; a
// tampered packet and a replay are dropped and counted.
// Under sip.srtp optional the same offer is answered the same way.
func TestSRTPPhoneCallsSoftphone(t *testing.T) {
	t.Parallel()
	for _, mode := range []sdp.SRTPMode{sdp.SRTPRequired, sdp.SRTPOptional} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			srtpPhoneCallsSoftphone(t, mode)
		})
	}
}

func srtpPhoneCallsSoftphone(t *testing.T, mode sdp.SRTPMode) {
	n := newTestNet(t, true, withSIPSRTP(mode))
	p := newPhone(t, n.gw.Addr("udp"), "alice", "desk-secret")
	if res := p.register(600); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d", res.StatusCode)
	}
	eventually(t, "bob to see alice/desk online", func() bool { return online(n.bob, "alice/desk") })
	m := newSRTPMedia(t, 660)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	dialogs := sipgo.NewDialogClientCache(p.cli, sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "127.0.0.1", Port: p.port()}})
	dc, err := dialogs.Invite(ctx, p.gwURI("bob+laptop"), m.offer(t, m.key), sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		t.Fatal(err)
	}
	if err := dc.WaitAnswer(ctx, sipgo.AnswerOptions{Username: "alice", Password: "desk-secret"}); err != nil {
		t.Fatalf("INVITE: %v", err)
	}
	if err := dc.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	ans, err := sdp.ParseOffer(dc.InviteResponse.Body())
	if err != nil {
		t.Fatal(err)
	}
	if !ans.Secure || len(ans.Crypto) != 1 || ans.Crypto[0].Tag != 2 || ans.Crypto[0].Suite != sdp.AESCM128HMACSHA180 || bytes.Equal(ans.Crypto[0].Key, m.key) {
		t.Fatalf("gateway answer: want RTP/SAVP, one a=crypto tag 2 AES_CM_128_HMAC_SHA1_80 with its own key:\n%s", dc.InviteResponse.Body())
	}
	m.use(t, ans, sdp.AESCM128HMACSHA180)
	eventually(t, "a second of audio at both ends", func() bool {
		return len(m.heard.samples()) >= 8000 && len(n.bobHeard.samples()) >= 16000
	})
	if f := dominant(t, n.bobHeard.samples()); f != 660 {
		t.Errorf("the softphone heard %v Hz, want the SRTP phone's 660", f)
	}
	if f := dominant(t, m.heard.samples()); f != 440 {
		t.Errorf("the SRTP phone heard %v Hz, want the softphone's 440", f)
	}
	calls := n.gw.Calls()
	if len(calls) != 1 || calls[0].SIPLeg.SRTP != string(sdp.AESCM128HMACSHA180) || calls[0].SIPLeg.SRTPAuthFailed != 0 {
		t.Fatalf("gateway calls %+v, want one SRTP call without auth failures", calls)
	}
	before := calls[0].SIPLeg.Received
	for range 5 {
		m.send(make([]byte, 160), true)
	}
	m.replay()
	eventually(t, "5 tampered packets and a replay dropped and counted", func() bool {
		c := n.gw.Calls()
		return len(c) == 1 && c[0].SIPLeg.SRTPAuthFailed == 5 && c[0].SIPLeg.SRTPReplayed >= 1
	})
	c := n.gw.Calls()[0]
	t.Logf("SIP leg: received %d (%d before the tampering), auth failed %d, replayed %d", c.SIPLeg.Received, before, c.SIPLeg.SRTPAuthFailed, c.SIPLeg.SRTPReplayed)
	if got := droppedMetric(t, n.gw, "srtp-auth-failed"); got != 5 {
		t.Errorf("baton_gateway_sip_dropped_packets_total{reason=srtp-auth-failed} = %v, want 5", got)
	}

	// Rekey: the phone re-INVITEs with a new key (RFC 4568 §7.1.4), then
	// sends with it; the gateway decrypts with the new key.
	newKey, _ := sdp.NewKey()
	target := dc.InviteResponse.Contact().Address
	req := sip.NewRequest(sip.INVITE, target)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(bytes.Replace(m.offer(t, newKey), []byte("o=baton 9 1 "), []byte("o=baton 9 2 "), 1))
	res, err := dc.Do(ctx, req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("rekeying re-INVITE: %v %v", res, err)
	}
	if err := dc.WriteRequest(sip.NewRequest(sip.ACK, target)); err != nil {
		t.Fatal(err)
	}
	reans, err := sdp.ParseOffer(res.Body())
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.key = newKey
	m.mu.Unlock()
	m.use(t, reans, sdp.AESCM128HMACSHA180)
	failed := n.gw.Calls()[0].SIPLeg.SRTPAuthFailed
	n.bobHeard.reset()
	eventually(t, "a second of audio under the new key", func() bool { return len(n.bobHeard.samples()) >= 16000 })
	if f := dominant(t, n.bobHeard.samples()[8000:]); f != 660 {
		t.Errorf("after the rekey the softphone heard %v Hz, want 660", f)
	}
	c = n.gw.Calls()[0]
	t.Logf("after the rekey: auth failed %d (%d before: packets in flight under the old key)", c.SIPLeg.SRTPAuthFailed, failed)
	if grew := c.SIPLeg.SRTPAuthFailed - failed; grew > 10 {
		t.Errorf("%d packets failed authentication after the rekey", grew)
	}
	if err := dc.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the gateway to forget the call", func() bool { return len(n.gw.Calls()) == 0 })
}

// TestSRTPPolicyRefusals: the offers the policy refuses get 488 naming
// why, and a malformed a=crypto gets 400.
func TestSRTPPolicyRefusals(t *testing.T) {
	t.Parallel()
	key, _ := sdp.NewKey()
	plainOffer := func(m *srtpMedia) []byte {
		body, _, err := sdp.NewSession(3).Offer(sdp.Local{Addr: netip.MustParseAddr("127.0.0.1"), Port: m.port(), Codecs: []string{"PCMU"}})
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	tests := []struct {
		name       string
		mode       sdp.SRTPMode
		body       func(m *srtpMedia) []byte
		wantStatus int
		wantReason string
	}{
		{"required refuses plain RTP", sdp.SRTPRequired, plainOffer, 488, "SRTP required"},
		{"off refuses RTP/SAVP", sdp.SRTPOff, func(m *srtpMedia) []byte { return m.offer(t, key) }, 488, "SRTP off"},
		{"bad a=crypto", sdp.SRTPOptional, func(m *srtpMedia) []byte {
			return bytes.Replace(m.offer(t, key), []byte("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:"), []byte("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:!"), 1)
		}, 400, "a=crypto"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := newTestNet(t, true, withSIPSRTP(tc.mode))
			p := newPhone(t, n.gw.Addr("udp"), "alice", "desk-secret")
			if res := p.register(600); res.StatusCode != 200 {
				t.Fatalf("REGISTER: %d", res.StatusCode)
			}
			eventually(t, "bob to see alice/desk online", func() bool { return online(n.bob, "alice/desk") })
			m := newSRTPMedia(t, 660)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			dialogs := sipgo.NewDialogClientCache(p.cli, sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "127.0.0.1", Port: p.port()}})
			dc, err := dialogs.Invite(ctx, p.gwURI("bob+laptop"), tc.body(m), sip.NewHeader("Content-Type", "application/sdp"))
			if err != nil {
				t.Fatal(err)
			}
			err = dc.WaitAnswer(ctx, sipgo.AnswerOptions{Username: "alice", Password: "desk-secret"})
			var de *sipgo.ErrDialogResponse
			if !errors.As(err, &de) || de.Res.StatusCode != tc.wantStatus || !strings.Contains(de.Res.Reason, tc.wantReason) {
				t.Fatalf("INVITE: %v, want %d naming %q", err, tc.wantStatus, tc.wantReason)
			}
			if len(n.bob.Calls()) != 0 {
				t.Fatalf("bob got a call: %+v", n.bob.Calls())
			}
		})
	}
}

// TestSoftphoneCallsSRTPPhone: under sip.srtp required the gateway
// offers RTP/SAVP with both suites; the phone answers tag 2
// (AES_CM_128_HMAC_SHA1_32) and the tones cross both ways. A second call
// that the phone answers with plain RTP is hung up: bob's call ends
// unsupported and the phone gets BYE.
func TestSoftphoneCallsSRTPPhone(t *testing.T) {
	t.Parallel()
	n := newTestNet(t, false, withSIPSRTP(sdp.SRTPRequired))
	p := newPhone(t, n.gw.Addr("udp"), "alice", "desk-secret")
	if res := p.register(600); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d", res.StatusCode)
	}
	eventually(t, "bob to see alice/desk online", func() bool { return online(n.bob, "alice/desk") })
	m := newSRTPMedia(t, 660)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	out, err := n.bob.Dial(ctx, "alice/desk")
	if err != nil {
		t.Fatal(err)
	}
	var ds *sipgo.DialogServerSession
	select {
	case ds = <-p.invites:
	case <-ctx.Done():
		t.Fatal("the phone got no INVITE")
	}
	o, err := sdp.ParseOffer(ds.InviteRequest.Body())
	if err != nil {
		t.Fatal(err)
	}
	if !o.Secure || len(o.Crypto) != 2 || o.Crypto[0].Suite != sdp.AESCM128HMACSHA180 || o.Crypto[1].Suite != sdp.AESCM128HMACSHA132 || o.Crypto[1].Tag != 2 {
		t.Fatalf("gateway offer: want RTP/SAVP with the 80 then the 32 suite:\n%s", ds.InviteRequest.Body())
	}
	ans := &sdp.Offer{SessionID: 5, SessionVersion: 1, Addr: netip.MustParseAddr("127.0.0.1"), Port: m.port(),
		Codecs:           []sdp.Codec{{PT: 0, Name: "PCMU", ClockRate: 8000}, {PT: 101, Name: "telephone-event", ClockRate: 8000, Fmtp: "0-16"}},
		TelephoneEventPT: 101, Direction: sdp.SendRecv, Secure: true,
		Crypto: []sdp.Crypto{{Tag: 2, Suite: sdp.AESCM128HMACSHA132, Key: m.key}}}
	body, err := ans.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	gwSide := *o
	gwSide.Crypto = o.Crypto[1:]
	m.use(t, &gwSide, sdp.AESCM128HMACSHA132)
	go func() { _ = ds.RespondSDP(body) }()
	eventually(t, "bob's call to be active", func() bool { c, _ := n.bob.Call(out.ID); return c.State == "active" })
	eventually(t, "a second of audio at both ends", func() bool {
		return len(m.heard.samples()) >= 8000 && len(n.bobHeard.samples()) >= 16000
	})
	if f := dominant(t, n.bobHeard.samples()); f != 660 {
		t.Errorf("the softphone heard %v Hz, want the SRTP phone's 660", f)
	}
	if f := dominant(t, m.heard.samples()); f != 440 {
		t.Errorf("the SRTP phone heard %v Hz, want the softphone's 440", f)
	}
	if c := n.gw.Calls(); len(c) != 1 || c[0].SIPLeg.SRTP != string(sdp.AESCM128HMACSHA132) {
		t.Errorf("gateway calls %+v, want one AES_CM_128_HMAC_SHA1_32 call", c)
	}
	// A digit from bob reaches the phone as RFC 4733 events, encrypted
	// on the same SRTP stream (writeEvent).
	if err := n.bob.SendDTMF(ctx, out.ID, endpoint.DTMFRequest{Digits: "5"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the phone to decrypt telephone-events for 5", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.events) > 0 && m.events[0] == 5
	})
	if err := n.bob.Hangup(ctx, out.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ds.Context().Done():
	case <-ctx.Done():
		t.Fatal("the phone got no BYE")
	}

	// The phone answers the SRTP offer with plain RTP: refused.
	out2, err := n.bob.Dial(ctx, "alice/desk")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ds = <-p.invites:
	case <-ctx.Done():
		t.Fatal("the phone got no second INVITE")
	}
	plain, _, err := sdp.NewSession(6).Offer(sdp.Local{Addr: netip.MustParseAddr("127.0.0.1"), Port: m.port(), Codecs: []string{"PCMU"}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ds.RespondSDP(plain) }()
	select {
	case <-ds.Context().Done():
	case <-ctx.Done():
		t.Fatal("the phone that answered plain RTP got no BYE")
	}
	var c endpoint.CallInfo
	eventually(t, "bob's second call to end", func() bool { c, _ = n.bob.Call(out2.ID); return c.State == "ended" })
	if c.Result != string(wire.CodeUnsupported) || !strings.Contains(c.EndReason, "SRTP required") {
		t.Errorf("bob's call ended %q (%s), want unsupported naming SRTP required", c.Result, c.EndReason)
	}
}

// TestLegSRTPNoAllocs: the SRTP hooks allocate nothing per packet.
func TestLegSRTPNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector (sync.Pool drops items at random); `make allocs` runs this without it")
	}
	l, err := openLeg(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.initSRTP(sdp.SRTPRequired); err != nil {
		t.Fatal(err)
	}
	if err := l.setSRTP(sdp.Crypto{Tag: 1, Suite: sdp.AESCM128HMACSHA180, Key: l.srtpKey()}, true); err != nil {
		t.Fatal(err)
	}
	p := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1}, Payload: make([]byte, 160)}
	plain := make([]byte, 0, 1500)
	cipher := make([]byte, 1500)
	seq := uint16(0)
	allocs := testing.AllocsPerRun(200, func() {
		seq++
		p.SequenceNumber = seq
		binary.BigEndian.PutUint32(p.Payload, uint32(seq))
		n, _ := p.MarshalTo(plain[:cap(plain)])
		out, err := l.protect(plain[:n])
		if err != nil {
			t.Fatal(err)
		}
		k := copy(cipher, out)
		// Same key both ways here: what we sent decrypts back.
		back, ok := l.unprotect(cipher[:k])
		if !ok || !bytes.Equal(back, plain[:n]) {
			t.Fatal("round trip through protect/unprotect failed")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet, want 0", allocs)
	}
}

// BenchmarkLegSRTP is the per-packet cost of the SRTP hooks on a 20 ms
// PCMU packet (160 octets): protect (the send path) and unprotect (the
// read loop), AES_CM_128_HMAC_SHA1_80.
func BenchmarkLegSRTP(b *testing.B) {
	for _, dir := range []string{"protect", "unprotect"} {
		b.Run(dir, func(b *testing.B) {
			tx, err := openLeg(netip.MustParseAddr("127.0.0.1"))
			if err != nil {
				b.Fatal(err)
			}
			defer tx.Close()
			rx, err := openLeg(netip.MustParseAddr("127.0.0.1"))
			if err != nil {
				b.Fatal(err)
			}
			defer rx.Close()
			for _, l := range []*leg{tx, rx} {
				if err := l.initSRTP(sdp.SRTPRequired); err != nil {
					b.Fatal(err)
				}
			}
			// rx decrypts what tx encrypts: its far key is tx's own.
			if err := tx.setSRTP(sdp.Crypto{Tag: 1, Suite: sdp.AESCM128HMACSHA180, Key: rx.srtpKey()}, true); err != nil {
				b.Fatal(err)
			}
			if err := rx.setSRTP(sdp.Crypto{Tag: 1, Suite: sdp.AESCM128HMACSHA180, Key: tx.srtpKey()}, true); err != nil {
				b.Fatal(err)
			}
			p := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1}, Payload: make([]byte, 160)}
			plain := make([]byte, 1500)
			wire := make([]byte, 1500)
			b.ReportAllocs()
			b.SetBytes(160)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p.SequenceNumber = uint16(i)
				p.Timestamp = uint32(i) * 160
				n, _ := p.MarshalTo(plain)
				out, err := tx.protect(plain[:n])
				if err != nil {
					b.Fatal(err)
				}
				if dir == "protect" {
					continue
				}
				k := copy(wire, out)
				if _, ok := rx.unprotect(wire[:k]); !ok {
					b.Fatal("not authentic")
				}
			}
		})
	}
}

// droppedMetric is the gateway's sip_dropped_packets_total for reason.
func droppedMetric(t *testing.T, gw *Gateway, reason string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := gw.Register(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "baton_gateway_sip_dropped_packets_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no sip_dropped_packets_total{reason=%q}", reason)
	return 0
}
