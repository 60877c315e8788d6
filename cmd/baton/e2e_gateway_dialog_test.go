package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/baton-voice/baton/p2p/audio"
)

// sippMessage is one SIP message from sipp's -trace_msg log.
type sippMessage struct {
	received bool
	text     string
}

// readSippTrace parses sipp's message log (-trace_msg -message_file):
// blocks headed "UDP message received [N] bytes :" or "UDP message sent
// (N bytes):" (sipp 3.6), each followed by the message.
func readSippTrace(t *testing.T, path string) []sippMessage {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("sipp's message trace: %v", err)
	}
	head := regexp.MustCompile(`(?m)^.*message (sent|received) (?:\[\d+\] bytes :|\(\d+ bytes\):)\s*$`)
	idx := head.FindAllStringSubmatchIndex(string(raw), -1)
	var out []sippMessage
	for i, m := range idx {
		end := len(raw)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		text := string(raw[m[1]:end])
		// The next block's "----- <date>" separator line is not ours.
		if i := strings.LastIndex(text, "\n-----"); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		out = append(out, sippMessage{received: string(raw[m[2]:m[3]]) == "received", text: text})
	}
	if len(out) == 0 {
		t.Fatalf("sipp's message trace %s holds no message:\n%s", path, tail(string(raw), 2000))
	}
	return out
}

// inviteAnswer is what one 200 to an INVITE said in its SDP.
type inviteAnswer struct {
	cseq      int
	version   uint64
	direction string
}

var (
	cseqInvite = regexp.MustCompile(`(?mi)^CSeq:\s*(\d+)\s+INVITE\s*$`)
	sdpOrigin  = regexp.MustCompile(`(?m)^o=\S+ \d+ (\d+) `)
	sdpDir     = regexp.MustCompile(`(?m)^a=(sendrecv|sendonly|recvonly|inactive)\s*$`)
)

// inviteAnswers lists the gateway's 200 responses to INVITEs in the
// trace, one per CSeq (retransmissions of the same 200 are one).
func inviteAnswers(t *testing.T, msgs []sippMessage) []inviteAnswer {
	t.Helper()
	var out []inviteAnswer
	for _, m := range msgs {
		if !m.received || !strings.HasPrefix(m.text, "SIP/2.0 200") {
			continue
		}
		c := cseqInvite.FindStringSubmatch(m.text)
		if c == nil {
			continue
		}
		cseq, _ := strconv.Atoi(c[1])
		if len(out) > 0 && out[len(out)-1].cseq == cseq {
			continue
		}
		a := inviteAnswer{cseq: cseq, direction: "sendrecv"}
		o := sdpOrigin.FindStringSubmatch(m.text)
		if o == nil {
			t.Fatalf("the 200 to INVITE CSeq %d has no o= line:\n%s", cseq, m.text)
		}
		a.version, _ = strconv.ParseUint(o[1], 10, 64)
		if d := sdpDir.FindStringSubmatch(m.text); d != nil {
			a.direction = d[1]
		}
		out = append(out, a)
	}
	return out
}

// Issue 8 §2, hold and resume from the SIP phone: alice's desk phone (sipp
// for the signaling, the test's own sockets for its RTP) calls bob's
// softphone through the real gateway, puts the call on hold (re-INVITE
// a=sendonly: the gateway answers a=recvonly with the o= version
// incremented and sends the phone no more RTP), sends an in-dialog
// OPTIONS (200), and resumes from a new RTP port (a=sendrecv answered
// a=sendrecv, o= version incremented again). The leg latches onto the new
// port and ignores the old one, which keeps sending: bob hears the desk's
// first port, then its second.
func TestE2EGatewayHoldResume(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startGatewayNet(t)
	rec := filepath.Join(n.dir, "bob.wav")
	bob := startPhone(t, n.dir, n.srv, "bob", "laptop", n.pw["bob"], phoneOpts{tone: 440, record: rec, autoAnswer: true})
	sdir := t.TempDir()
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret", "-i", "127.0.0.1", "-p", sipPort)
	waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")

	first := startSIPMedia(t, "127.0.0.1", 660)
	second := startSIPMedia(t, "127.0.0.1", 880)
	trace := filepath.Join(sdir, "hold.messages")
	runSipp(t, sipp, sdir, n.sipUDP, "call_hold.xml", "-s", "bob", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret",
		"-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(first.addr().Port), "-key", "rtpport2", fmt.Sprint(second.addr().Port),
		"-i", "127.0.0.1", "-p", sipPort, "-trace_msg", "-message_file", trace)
	waitNoActiveCall(t, n.dir, bob.admin)
	first.close()
	second.close()

	// The o= version goes up with every changed answer (RFC 3264 §8).
	answers := inviteAnswers(t, readSippTrace(t, trace))
	t.Logf("the gateway's answers: %+v", answers)
	if len(answers) != 3 {
		t.Fatalf("got %d 200s to INVITEs, want 3 (call, hold, resume): %+v", len(answers), answers)
	}
	for i, want := range []string{"sendrecv", "recvonly", "sendrecv"} {
		if answers[i].direction != want {
			t.Errorf("answer %d (CSeq %d) is a=%s, want a=%s", i, answers[i].cseq, answers[i].direction, want)
		}
		if i > 0 && answers[i].version != answers[i-1].version+1 {
			t.Errorf("answer %d has o= version %d after %d, want it incremented by one", i, answers[i].version, answers[i-1].version)
		}
	}

	// On hold the gateway sent the phone nothing: between the last packet
	// on the first port and the first on the second lies the hold (3 s in
	// the scenario; bound with room for a loaded machine).
	firstGot, secondGot := first.arrivals(), second.arrivals()
	if len(firstGot) < 50 || len(secondGot) < 50 {
		t.Fatalf("the desk's ports heard %d and %d packets of bob, want at least 50 each", len(firstGot), len(secondGot))
	}
	quiet := secondGot[0].Sub(firstGot[len(firstGot)-1])
	t.Logf("first port heard %d packets, second %d; no RTP to the phone for %v around the hold", len(firstGot), len(secondGot), quiet)
	if quiet < 2500*time.Millisecond {
		t.Errorf("the gateway sent RTP to the phone while it had the call on hold (quiet for only %v of the 3 s hold)", quiet)
	}

	// bob heard the desk throughout: its first port (also while on hold,
	// the phone being sendonly), then its second one only.
	clip := readRecording(t, rec)
	order, _ := heardToneOrder(clip)
	t.Logf("bob heard tones %v", order)
	if len(order) < 2 || order[0] != 660 || order[len(order)-1] != 880 {
		t.Errorf("bob heard %v, want the desk's first port (660 Hz), then its second (880 Hz)", order)
	}
	if r := ctl(t, n.dir, bob.admin, "calls"); len(table(t, r.stdout)) != 1 {
		t.Errorf("bob saw more than one call:\n%s", r.stdout)
	}
}

// arrivals are the arrival times of every packet the party heard.
func (m *sipMedia) arrivals() []time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]time.Time, len(m.got))
	for i, p := range m.got {
		out[i] = p.at
	}
	return out
}

// readRecording reads a phone's WAV recording (8 kHz) once it is written.
func readRecording(t *testing.T, path string) []int16 {
	t.Helper()
	var clip *audio.Clip
	eventually(t, 10*time.Second, "the recording "+filepath.Base(path), func() (bool, string) {
		var err error
		clip, err = audio.ReadWAVFile(path)
		return err == nil, fmt.Sprint(err)
	})
	if clip.SampleRate != 8000 {
		t.Fatalf("%s is %d Hz, want 8000", path, clip.SampleRate)
	}
	return clip.Samples
}

var toTag = regexp.MustCompile(`(?mi)^To:.*;tag=([^;\s]+)`)

// Issue 8 §2, in-dialog retransmissions (RFC 3261 §13.3.1.4, §17.2.1,
// RFC 6026): the desk phone's INVITE is repeated before its ACK (same
// branch: the gateway's 200 comes again, retransmitted until the ACK) and
// after it (new branch: the 200 is resent), its ACK twice; the same for a
// hold re-INVITE. Every copy gets the same 200 (one To tag, one SDP body
// per CSeq), bob's softphone sees one call, and the dialog goes on (an
// OPTIONS and the BYE are answered).
func TestE2EGatewayRetransmissions(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startGatewayNet(t)
	bob := startPhone(t, n.dir, n.srv, "bob", "laptop", n.pw["bob"], phoneOpts{tone: 440, autoAnswer: true})
	sdir := t.TempDir()
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret", "-i", "127.0.0.1", "-p", sipPort)
	waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")

	media := startSIPMedia(t, "127.0.0.1", 660)
	trace := filepath.Join(sdir, "retransmit.messages")
	runSipp(t, sipp, sdir, n.sipUDP, "call_retransmit.xml", "-s", "bob", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret",
		"-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(media.addr().Port),
		"-i", "127.0.0.1", "-p", sipPort, "-trace_msg", "-message_file", trace)
	waitNoActiveCall(t, n.dir, bob.admin)

	type seen struct {
		beforeACK, afterACK int
		acked               bool
		tags, sdps          map[string]bool
	}
	byCSeq := map[string]*seen{}
	get := func(cseq string) *seen {
		if byCSeq[cseq] == nil {
			byCSeq[cseq] = &seen{tags: map[string]bool{}, sdps: map[string]bool{}}
		}
		return byCSeq[cseq]
	}
	cseqAck := regexp.MustCompile(`(?mi)^CSeq:\s*(\d+)\s+ACK\s*$`)
	for _, m := range readSippTrace(t, trace) {
		if c := cseqAck.FindStringSubmatch(m.text); !m.received && c != nil {
			get(c[1]).acked = true
			continue
		}
		c := cseqInvite.FindStringSubmatch(m.text)
		if !m.received || c == nil || !strings.HasPrefix(m.text, "SIP/2.0 200") {
			continue
		}
		s := get(c[1])
		if s.acked {
			s.afterACK++
		} else {
			s.beforeACK++
		}
		if tag := toTag.FindStringSubmatch(m.text); tag != nil {
			s.tags[tag[1]] = true
		}
		if i := strings.Index(m.text, "\nv=0"); i >= 0 {
			s.sdps[strings.TrimSpace(m.text[i:])] = true
		}
	}
	for _, cseq := range []string{"2", "3"} {
		s := byCSeq[cseq]
		if s == nil {
			t.Fatalf("no 200 to INVITE CSeq %s in the trace", cseq)
		}
		t.Logf("INVITE CSeq %s: %d 200s before its ACK, %d after, %d To tags, %d SDP bodies", cseq, s.beforeACK, s.afterACK, len(s.tags), len(s.sdps))
		// Before the ACK: the 200 and its retransmission at T1 = 500 ms
		// (the scenario waits 1.2 s for the call's, 1 s for the
		// re-INVITE's, whose next one is due at 1.5 s). After it: only
		// the one resent to the new-branch copy; a retransmission not
		// stopped by the ACK would show up here (or fail the scenario).
		if s.beforeACK < 2 {
			t.Errorf("INVITE CSeq %s: %d 200s before the ACK, want the 200 retransmitted until the ACK", cseq, s.beforeACK)
		}
		if s.afterACK != 1 {
			t.Errorf("INVITE CSeq %s: %d 200s after the ACK, want exactly one (resent to the new-branch copy)", cseq, s.afterACK)
		}
		if len(s.tags) != 1 || len(s.sdps) != 1 {
			t.Errorf("the 200s to INVITE CSeq %s differ: %d To tags, %d SDP bodies (a second dialog or negotiation)", cseq, len(s.tags), len(s.sdps))
		}
	}
	if r := ctl(t, n.dir, bob.admin, "calls"); len(table(t, r.stdout)) != 1 {
		t.Errorf("bob saw more than one call:\n%s", r.stdout)
	}
	if rep := media.report(); rep.packets < 50 {
		t.Errorf("the desk phone heard only %d packets of bob", rep.packets)
	}
}

// Issue 8 §2, glare (RFC 3261 §14.2): the desk phone sends a second
// re-INVITE before the ACK of its first; the gateway answers it 491
// Request Pending (the scenario fails on anything else), keeps the first
// exchange (the hold) and takes the retried re-INVITE (resume) afterwards
// with the o= version incremented once per accepted change; bob's call is
// the same one throughout.
func TestE2EGatewayGlare(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startGatewayNet(t)
	bob := startPhone(t, n.dir, n.srv, "bob", "laptop", n.pw["bob"], phoneOpts{tone: 440, autoAnswer: true})
	sdir := t.TempDir()
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret", "-i", "127.0.0.1", "-p", sipPort)
	waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")

	media := startSIPMedia(t, "127.0.0.1", 660)
	trace := filepath.Join(sdir, "glare.messages")
	runSipp(t, sipp, sdir, n.sipUDP, "call_glare.xml", "-s", "bob", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret",
		"-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(media.addr().Port),
		"-i", "127.0.0.1", "-p", sipPort, "-trace_msg", "-message_file", trace)
	waitNoActiveCall(t, n.dir, bob.admin)

	msgs := readSippTrace(t, trace)
	pending := 0
	for _, m := range msgs {
		if m.received && strings.HasPrefix(m.text, "SIP/2.0 491") {
			if c := cseqInvite.FindStringSubmatch(m.text); c == nil || c[1] != "4" {
				t.Errorf("491 to something else than the second re-INVITE:\n%s", m.text)
			}
			pending++
		}
	}
	if pending == 0 {
		t.Fatal("no 491 in sipp's trace")
	}
	answers := inviteAnswers(t, msgs)
	t.Logf("491s: %d; the gateway's answers: %+v", pending, answers)
	if len(answers) != 3 || answers[1].direction != "recvonly" || answers[2].direction != "sendrecv" ||
		answers[1].version != answers[0].version+1 || answers[2].version != answers[1].version+1 {
		t.Errorf("answers %+v, want sendrecv, recvonly, sendrecv with the o= version up by one each", answers)
	}
	if r := ctl(t, n.dir, bob.admin, "calls"); len(table(t, r.stdout)) != 1 {
		t.Errorf("bob saw more than one call:\n%s", r.stdout)
	}
}

// writeSelfSigned writes a self-signed ECDSA certificate for 127.0.0.1
// and its key as PEM files in dir, and returns the paths and a pool
// trusting it.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "baton gateway test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = writeFile(t, dir, "sip.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyFile = writeFile(t, dir, "sip.key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

var gatewayTLS = regexp.MustCompile(`gateway sip tls (\S+)`)

// Issue 8 §2, SIP over TLS: the real gateway with only a TLS listener
// (sip.tls, a self-signed certificate made here); a sipgo user agent that
// trusts that certificate registers alice's desk phone with digest over
// TLS, calls bob's softphone (INVITE, 407, INVITE with credentials, 200,
// ACK: our Contact says transport=tls, so the ACK and BYE come back over
// TLS), streams a tone that bob hears, and hangs up. A client that does not
// trust the certificate gets no answer at all.
func TestE2EGatewayTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	srv := startAccess(t, "access", dir, data, "127.0.0.1:0")
	pw := addUsers(t, dir, data, "alice", "bob")
	mustBaton(t, dir, "buddy", "add", "alice", "bob", "--data-dir", data)
	sipPw := writeFile(t, dir, "desk.pw", "desk-secret\n")
	ha1 := strings.TrimSpace(mustBaton(t, dir, "gateway", "ha1", "--user", "alice", "--realm", "baton", "--password-file", sipPw).stdout)
	certFile, keyFile, pool := writeSelfSigned(t, dir)
	cfg := writeFile(t, dir, "gateway.yaml", fmt.Sprintf(`access: %s
ca: %s
sip:
  udp: ""
  tcp: ""
  tls: 127.0.0.1:0
  tls_cert: %s
  tls_key: %s
  realm: baton
accounts:
  - sip_user: alice
    ha1: %s
    device: alice/desk
    password_file: %s
`, srv.addr, srv.ca, certFile, keyFile, ha1, pw["alice"]))
	gw := start(t, "gateway", dir, "gateway", "--config", cfg)
	m := gw.waitStdout(t, gatewayReady)
	if m[1] != "off" || m[2] != "off" {
		t.Fatalf("gateway listens on udp %s tcp %s, want TLS only", m[1], m[2])
	}
	tlsAddr := gw.waitStdout(t, gatewayTLS)[1]
	rec := filepath.Join(dir, "bob.wav")
	bob := startPhone(t, dir, srv, "bob", "laptop", pw["bob"], phoneOpts{tone: 440, record: rec, autoAnswer: true})
	host, portStr, _ := net.SplitHostPort(tlsAddr)
	port, _ := strconv.Atoi(portStr)
	target := func(user string) sip.Uri {
		u := sip.Uri{Scheme: "sip", User: user, Host: host, Port: port, UriParams: sip.NewParams()}
		u.UriParams.Add("transport", "tls")
		return u
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()

	// A client that does not trust the certificate: the handshake fails,
	// nothing is registered.
	{
		ua, err := sipgo.NewUA(sipgo.WithUserAgenTLSConfig(&tls.Config{ServerName: host}))
		if err != nil {
			t.Fatal(err)
		}
		cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
		if err != nil {
			t.Fatal(err)
		}
		req := sip.NewRequest(sip.REGISTER, target(""))
		req.AppendHeader(&sip.ContactHeader{Address: target("alice")})
		short, done := context.WithTimeout(ctx, 5*time.Second)
		res, err := cli.Do(short, req)
		done()
		if err == nil {
			t.Fatalf("a client that does not trust the gateway's certificate got %d", res.StatusCode)
		}
		t.Logf("untrusting client: %v", err)
		_ = ua.Close()
	}

	ua, err := sipgo.NewUA(sipgo.WithUserAgent("baton-e2e-tls"), sipgo.WithUserAgenTLSConfig(&tls.Config{RootCAs: pool, ServerName: host}))
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	contact := sip.ContactHeader{Address: target("alice")}
	reg := sip.NewRequest(sip.REGISTER, target(""))
	reg.AppendHeader(&sip.FromHeader{Address: target("alice"), Params: sip.NewParams()})
	reg.From().Params.Add("tag", sip.GenerateTagN(8))
	reg.AppendHeader(&sip.ToHeader{Address: target("alice"), Params: sip.NewParams()})
	reg.AppendHeader(&contact)
	reg.AppendHeader(sip.NewHeader("Expires", "600"))
	res, err := cli.Do(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != sip.StatusUnauthorized {
		t.Fatalf("REGISTER over TLS without credentials: %d, want 401", res.StatusCode)
	}
	res, err = cli.DoDigestAuth(ctx, reg, res, sipgo.DigestAuth{Username: "alice", Password: "desk-secret"})
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != sip.StatusOK {
		t.Fatalf("REGISTER over TLS with credentials: %d %s, want 200", res.StatusCode, res.Reason)
	}
	waitOnlineBuddy(t, dir, bob.admin, "alice/desk")

	media := startSIPMedia(t, "127.0.0.1", 660)
	offer := fmt.Sprintf("v=0\r\no=e2e 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n", media.addr().Port)
	dialogs := sipgo.NewDialogClientCache(cli, contact)
	inv := sip.NewRequest(sip.INVITE, target("bob"))
	inv.AppendHeader(&sip.FromHeader{Address: target("alice"), Params: sip.NewParams()})
	inv.From().Params.Add("tag", sip.GenerateTagN(8))
	inv.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	inv.SetBody([]byte(offer))
	dc, err := dialogs.WriteInvite(ctx, inv)
	if err != nil {
		t.Fatal(err)
	}
	if err := dc.WaitAnswer(ctx, sipgo.AnswerOptions{Username: "alice", Password: "desk-secret"}); err != nil {
		t.Fatalf("INVITE over TLS: %v", err)
	}
	c := dc.InviteResponse.Contact()
	if c == nil || !strings.EqualFold(c.Address.UriParams.GetOr("transport", ""), "tls") {
		t.Fatalf("the gateway's 200 over TLS has Contact %v, want one with transport=tls", c)
	}
	if err := dc.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	id := waitActiveWith(t, dir, bob.admin, "alice/desk", nil)
	time.Sleep(3 * time.Second) // three seconds of the desk's tone
	if err := dc.Bye(ctx); err != nil {
		t.Fatalf("BYE over TLS: %v", err)
	}
	waitCallState(t, dir, bob.admin, id, "ended")
	checkHears(t, rec, 660, 2*time.Second)
	if rep := media.report(); rep.packets < 50 {
		t.Errorf("the desk phone heard only %d packets of bob", rep.packets)
	}
}
