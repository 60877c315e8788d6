package wire

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// srtpKey returns a deterministic 30-byte SRTP master key+salt.
func srtpKey(seed byte) []byte {
	k := make([]byte, SRTPKeyLen)
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

// sampleMessages returns one realistic, valid message of every type, keyed
// by type. The test TestSampleMessagesCoverEveryType keeps it complete.
func sampleMessages() map[Type]Message {
	return map[Type]Message{
		TypeError: &Error{Code: CodeUnknownCall, Message: "no call with that id", CallID: "c-7f3a9e"},
		TypeLoginRequest: &LoginRequest{
			User:       "alice",
			Device:     "laptop",
			Password:   "correct horse battery staple",
			PublicKey:  bytes.Repeat([]byte{0x30, 0x59, 0x30, 0x13}, 23), // 92 bytes, the size of a P-256 PKIX key
			SignalAddr: "127.0.0.2:7070",
			Status:     StatusAway,
		},
		TypeLoginResponse: &LoginResponse{
			Certificate:  bytes.Repeat([]byte{0x30, 0x82}, 250),
			ExpiresUnix:  1767225600,
			ObservedAddr: "127.0.0.2:51234",
			KeepaliveMS:  15000,
			Profile: Profile{
				User: "alice",
				Devices: []Device{
					{User: "alice", Device: "desk", Status: StatusOnline, SignalAddr: "127.0.0.3:7070", SinceUnix: 1767220000},
					{User: "alice", Device: "mobile", Status: StatusOffline},
				},
				Buddies: []Buddy{
					{User: "bob", Devices: []Device{
						{User: "bob", Device: "phone", Status: StatusAway, SignalAddr: "[::1]:7071", SinceUnix: 1767221111},
					}},
					{User: "carol.smith"},
				},
			},
		},
		TypeKeepalive:    &Keepalive{},
		TypeKeepaliveAck: &KeepaliveAck{},
		TypeSetStatus:    &SetStatus{Status: StatusOnline},
		TypePresence: &Presence{Device: Device{
			User: "bob", Device: "phone", Status: StatusOnline, SignalAddr: "127.0.0.4:7070", SinceUnix: 1767222222,
		}},
		TypeLogout:       &Logout{},
		TypeRenewRequest: &RenewRequest{},
		TypeRenewResponse: &RenewResponse{
			Certificate: bytes.Repeat([]byte{0x30, 0x82, 0x01}, 100),
			ExpiresUnix: 1767229200,
		},
		TypeInvite: &Invite{
			CallID: "c-7f3a9e",
			From:   "alice/laptop",
			To:     "bob/phone",
			Codecs: []string{"PCMU", "PCMA"},
			Media:  Media{Addr: "127.0.0.2:40000", SSRC: 0xdeadbeef, SRTPKey: srtpKey(1), PtimeMS: 20},
		},
		TypeRinging: &Ringing{CallID: "c-7f3a9e"},
		TypeAccept: &Accept{
			CallID: "c-7f3a9e",
			Codec:  "PCMU",
			Media:  Media{Addr: "127.0.0.4:41000", SSRC: 0x12345678, SRTPKey: srtpKey(100), PtimeMS: 20},
		},
		TypeReject: &Reject{CallID: "c-7f3a9e", Code: CodeBusy, Reason: "in another call"},
		TypeCancel: &Cancel{CallID: "c-7f3a9e"},
		TypeBye:    &Bye{CallID: "c-7f3a9e", Reason: "hangup"},

		TypeSessionQuery: &SessionQuery{QueryID: "q-1"},
		TypeSessionList: &SessionList{QueryID: "q-1", Sessions: []SessionParams{{
			CallID: "c-7f3a9e", Peer: "bob/phone", Direction: DirectionSendRecv,
			PeerSignal: "127.0.0.4:7070", PeerMedia: "127.0.0.4:41000", Codec: "PCMU", PtimeMS: 20,
			PeerSSRC: 0x12345678, LocalSSRC: 0xdeadbeef, SendKey: srtpKey(1), RecvKey: srtpKey(100),
			Grant: sampleGrant(),
		}}},
		TypeStopAudio: &StopAudio{CallID: "c-7f3a9e"},
		TypeStopAck:   &StopAck{CallID: "c-7f3a9e", PeerSSRC: 0x12345678, PeerROC: 1, PeerSeq: seqPtr(5)},
		TypeResume:    &Resume{CallID: "c-7f3a9e", Reason: "C refused"},
		TypeResumeAck: &ResumeAck{CallID: "c-7f3a9e"},
		TypeRelease:   &Release{CallID: "c-7f3a9e"},
		TypeReestablish: &Reestablish{CallID: "c-7f3a9e", SignalAddr: "127.0.0.3:7070",
			Media: Media{Addr: "127.0.0.3:42000", SSRC: 0x0badcafe, PtimeMS: 20}, Grant: sampleGrant()},
		TypeReestablishAck: &ReestablishAck{CallID: "c-7f3a9e", PeerSSRC: 0x12345678, PeerROC: 3, PeerSeq: seqPtr(65535)},
		TypeNewAddress:     &NewAddress{CallID: "c-7f3a9e", Media: Media{Addr: "127.0.0.7:43000", SSRC: 0x0badcafe, PtimeMS: 20}},
		TypeNewAddressAck:  &NewAddressAck{CallID: "c-7f3a9e"},
		TypeWithdraw:       &Withdraw{CallID: "c-7f3a9e", Reason: "no acknowledgement of the new address"},

		TypePushOffer: &PushOffer{CallID: "c-7f3a9e", From: "alice/laptop", Peer: "bob/phone"},
		TypePushResult: &PushResult{CallID: "c-7f3a9e", HandoffID: "h-0123456789ab", State: HandoffDone,
			NewAddress: "127.0.0.3:43000", FirstAudioUS: 61000,
			Steps: []PushStep{{Step: 1, Title: "A logs in", SinceStartUS: 0, Detail: "logged in"}}},

		TypeDTMF:            &DTMF{CallID: "c-7f3a9e", Digits: "123#", DurationMS: 120},
		TypeMediaUpdate:     &MediaUpdate{CallID: "c-7f3a9e", Version: 2, Direction: MediaSendOnly, Codec: "PCMU", Reason: "hold"},
		TypeMediaUpdateAck:  &MediaUpdateAck{CallID: "c-7f3a9e", Version: 2, Direction: MediaRecvOnly, Codec: "PCMU"},
		TypeTransferRequest: &TransferRequest{CallID: "c-7f3a9e", From: "alice/laptop", Target: "carol"},
		TypeTransferResult:  &TransferResult{CallID: "c-7f3a9e", State: TransferDone, NewCallID: "c-0123456789abcdef"},
		TypeInviteReplaces: &InviteReplaces{
			Invite: Invite{CallID: "c-0123456789abcdef", From: "bob/phone", To: "carol/laptop", Codecs: []string{"opus"},
				Media: Media{Addr: "127.0.0.2:40000", SSRC: 0xdeadbeef, PtimeMS: 20}},
			Replaces: sampleReplaces()},
		TypeGatewayLogin:   &GatewayLogin{Gateway: "gw1", Secret: "OzGZCH8u3DpaNGvD342Qybrs84FGWU-kytftAkjtVrg"},
		TypeGatewayWelcome: &GatewayWelcome{ObservedAddr: "127.0.0.5:50000", KeepaliveMS: 15000, Users: []string{"alice", "carol"}},
		TypeDeviceLogin: &DeviceLogin{ID: "alice/desk", PublicKey: bytes.Repeat([]byte{0x30, 0x59, 0x30, 0x13}, 23),
			SignalAddr: "127.0.0.5:7070", Status: StatusOnline},
		TypeDeviceWelcome: &DeviceWelcome{ID: "alice/desk", Certificate: bytes.Repeat([]byte{0x30, 0x82}, 250), ExpiresUnix: 1767225600,
			Profile: Profile{User: "alice", Buddies: []Buddy{{User: "bob"}}}},
		TypeDeviceError:    &DeviceError{ID: "carol/desk", Code: CodeNotDelegated, Message: "gateway gw1 may not log in carol/desk"},
		TypeDevicePresence: &DevicePresence{ID: "alice/desk", Device: Device{User: "bob", Device: "phone", Status: StatusOnline, SignalAddr: "127.0.0.4:7070"}},
		TypeDeviceStatus:   &DeviceStatus{ID: "alice/desk", Status: StatusAway},
		TypeDeviceLogout:   &DeviceLogout{ID: "alice/desk"},
		TypeDeviceRenew:    &DeviceRenew{ID: "alice/desk"},
		TypeDeviceRenewed:  &DeviceRenewed{ID: "alice/desk", Certificate: bytes.Repeat([]byte{0x30, 0x82, 0x01}, 100), ExpiresUnix: 1767229200},
	}
}

// sampleReplaces: alice/laptop lets bob/phone replace her call c-1b2c3d
// with carol/laptop.
func sampleReplaces() Replaces {
	return Replaces{CallID: "c-1b2c3d", From: "alice/laptop", To: "bob/phone", Target: "carol/laptop",
		NotAfterUnix: 1767229200, Nonce: bytes.Repeat([]byte{9}, ReplacesNonceLen), Signature: bytes.Repeat([]byte{0x30}, 71)}
}

func seqPtr(v uint16) *uint16 { return &v }

func sampleGrant() Grant {
	return Grant{CallID: "c-7f3a9e", From: "alice/desk", To: "alice/laptop", Peer: "bob/phone",
		NotAfterUnix: 1767229200, Nonce: bytes.Repeat([]byte{7}, GrantNonceLen), Signature: bytes.Repeat([]byte{0x30}, 71)}
}

// allTypes lists every known message type, in number order.
var allTypes = []Type{
	TypeError,
	TypeLoginRequest, TypeLoginResponse, TypeKeepalive, TypeKeepaliveAck,
	TypeSetStatus, TypePresence, TypeLogout, TypeRenewRequest, TypeRenewResponse,
	TypeGatewayLogin, TypeGatewayWelcome, TypeDeviceLogin, TypeDeviceWelcome, TypeDeviceError,
	TypeDevicePresence, TypeDeviceStatus, TypeDeviceLogout, TypeDeviceRenew, TypeDeviceRenewed,
	TypeInvite, TypeRinging, TypeAccept, TypeReject, TypeCancel, TypeBye,
	TypeSessionQuery, TypeSessionList, TypeStopAudio, TypeStopAck, TypeResume,
	TypeResumeAck, TypeRelease, TypeReestablish, TypeReestablishAck,
	TypeNewAddress, TypeNewAddressAck, TypeWithdraw,
	TypePushOffer, TypePushResult,
	TypeDTMF,
	TypeTransferRequest, TypeTransferResult, TypeInviteReplaces,
	TypeMediaUpdate, TypeMediaUpdateAck,
}

func TestSampleMessagesCoverEveryType(t *testing.T) {
	t.Parallel()
	samples := sampleMessages()
	// Every type New knows must have a sample, and no number outside
	// allTypes may be known (a new type must be added here and to
	// docs/protocol.md).
	for n := 0; n <= 0xffff; n++ {
		typ := Type(n)
		m := New(typ)
		_, listed := samples[typ]
		if (m != nil) != listed {
			t.Errorf("type %d: New returns %T, sample present %v", n, m, listed)
		}
		if m != nil && m.Type() != typ {
			t.Errorf("New(%d).Type() = %d", n, m.Type())
		}
	}
	if len(samples) != len(allTypes) {
		t.Errorf("%d samples, %d types", len(samples), len(allTypes))
	}
	for typ, m := range samples {
		if m.Type() != typ {
			t.Errorf("sample for %s has type %s", typ, m.Type())
		}
	}
}

// TestTypeNumbers pins the type numbers: they are protocol values
// (docs/protocol.md, section 6) and are never renumbered.
func TestTypeNumbers(t *testing.T) {
	t.Parallel()
	want := map[Type]uint16{
		TypeUnknown: 0, TypeError: 1,
		TypeLoginRequest: 100, TypeLoginResponse: 101, TypeKeepalive: 102, TypeKeepaliveAck: 103,
		TypeSetStatus: 104, TypePresence: 105, TypeLogout: 106, TypeRenewRequest: 107, TypeRenewResponse: 108,
		TypeGatewayLogin: 110, TypeGatewayWelcome: 111, TypeDeviceLogin: 112, TypeDeviceWelcome: 113, TypeDeviceError: 114,
		TypeDevicePresence: 115, TypeDeviceStatus: 116, TypeDeviceLogout: 117, TypeDeviceRenew: 118, TypeDeviceRenewed: 119,
		TypeInvite: 200, TypeRinging: 201, TypeAccept: 202, TypeReject: 203, TypeCancel: 204, TypeBye: 205,
		TypeSessionQuery: 300, TypeSessionList: 301, TypeStopAudio: 302, TypeStopAck: 303, TypeResume: 304,
		TypeResumeAck: 305, TypeRelease: 306, TypeReestablish: 310, TypeReestablishAck: 311,
		TypeNewAddress: 312, TypeNewAddressAck: 313, TypeWithdraw: 314,
		TypePushOffer: 320, TypePushResult: 321,
		TypeDTMF:            330,
		TypeTransferRequest: 340, TypeTransferResult: 341, TypeInviteReplaces: 342,
		TypeMediaUpdate: 350, TypeMediaUpdateAck: 351,
	}
	for typ, n := range want {
		if uint16(typ) != n {
			t.Errorf("%s = %d, want %d", typ, uint16(typ), n)
		}
	}
	if len(want) != len(allTypes)+1 {
		t.Errorf("%d numbers pinned, %d types", len(want)-1, len(allTypes))
	}
}

func TestTypeString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		typ  Type
		want string
	}{
		{TypeError, "error"},
		{TypeLoginRequest, "login-request"},
		{TypeLoginResponse, "login-response"},
		{TypeKeepalive, "keepalive"},
		{TypeKeepaliveAck, "keepalive-ack"},
		{TypeSetStatus, "set-status"},
		{TypePresence, "presence"},
		{TypeLogout, "logout"},
		{TypeRenewRequest, "renew-request"},
		{TypeRenewResponse, "renew-response"},
		{TypeInvite, "invite"},
		{TypeRinging, "ringing"},
		{TypeAccept, "accept"},
		{TypeReject, "reject"},
		{TypeCancel, "cancel"},
		{TypeBye, "bye"},
		{TypeUnknown, "type(0)"},
		{Type(999), "type(999)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			if got := tt.typ.String(); got != tt.want {
				t.Errorf("Type(%d).String() = %q, want %q", uint16(tt.typ), got, tt.want)
			}
		})
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	for typ, m := range sampleMessages() {
		t.Run(typ.String(), func(t *testing.T) {
			t.Parallel()
			p, err := Encode(m)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := Decode(Frame{Type: typ, Seq: 1, Payload: p})
			if err != nil {
				t.Fatalf("Decode(%s): %v", p, err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Errorf("round trip:\n got %#v\nwant %#v", got, m)
			}
		})
	}
}

// TestEncodeJSONKeys pins the JSON keys of the protocol: renaming a field is
// an incompatible change (docs/protocol.md, versioning).
func TestEncodeJSONKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		m    Message
		want string
	}{
		{"error", &Error{Code: CodeBusy, Message: "m", CallID: "c1"}, `{"code":"busy","message":"m","call_id":"c1"}`},
		{"error minimal", &Error{Code: CodeInternal}, `{"code":"internal"}`},
		{"error rate-limited", &Error{Code: CodeRateLimited, Message: "m", RetryAfterMS: 9500}, `{"code":"rate-limited","message":"m","retry_after_ms":9500}`},
		{"login-request", &LoginRequest{User: "a", Device: "d", Password: "p", PublicKey: []byte{1, 2, 3}, SignalAddr: "127.0.0.1:1", Status: StatusOnline},
			`{"user":"a","device":"d","password":"p","public_key":"AQID","signal_addr":"127.0.0.1:1","status":"online"}`},
		{"login-response", &LoginResponse{Certificate: []byte{1}, ExpiresUnix: 2, ObservedAddr: "127.0.0.1:3", KeepaliveMS: 4, Profile: Profile{User: "a"}},
			`{"certificate":"AQ==","expires_unix":2,"observed_addr":"127.0.0.1:3","keepalive_ms":4,"profile":{"user":"a","devices":null,"buddies":null}}`},
		{"keepalive", &Keepalive{}, `{}`},
		{"set-status", &SetStatus{Status: StatusAway}, `{"status":"away"}`},
		{"presence", &Presence{Device: Device{User: "b", Device: "p", Status: StatusOnline, SignalAddr: "127.0.0.1:5", SinceUnix: 6}},
			`{"device":{"user":"b","device":"p","status":"online","signal_addr":"127.0.0.1:5","since_unix":6}}`},
		{"renew-response", &RenewResponse{Certificate: []byte{1}, ExpiresUnix: 7}, `{"certificate":"AQ==","expires_unix":7}`},
		{"invite", &Invite{CallID: "c1", From: "a/d", To: "b/p", Codecs: []string{"PCMU"}, Media: Media{Addr: "127.0.0.1:8", SSRC: 9, PtimeMS: 20}},
			`{"call_id":"c1","from":"a/d","to":"b/p","codecs":["PCMU"],"media":{"addr":"127.0.0.1:8","ssrc":9,"ptime_ms":20}}`},
		{"accept", &Accept{CallID: "c1", Codec: "PCMA", Media: Media{Addr: "127.0.0.1:8", SSRC: 9, SRTPKey: make([]byte, SRTPKeyLen), PtimeMS: 20}},
			`{"call_id":"c1","codec":"PCMA","media":{"addr":"127.0.0.1:8","ssrc":9,"srtp_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","ptime_ms":20}}`},
		{"reject", &Reject{CallID: "c1", Code: CodeDeclined, Reason: "r"}, `{"call_id":"c1","code":"declined","reason":"r"}`},
		{"ringing", &Ringing{CallID: "c1"}, `{"call_id":"c1"}`},
		{"cancel", &Cancel{CallID: "c1"}, `{"call_id":"c1"}`},
		{"bye", &Bye{CallID: "c1"}, `{"call_id":"c1"}`},
		{"stop-ack of an older B", &StopAck{CallID: "c1"}, `{"call_id":"c1"}`},
		{"reestablish-ack of an older C", &ReestablishAck{CallID: "c1"}, `{"call_id":"c1"}`},
		{"reestablish-ack with C's stream index", &ReestablishAck{CallID: "c1", PeerSSRC: 9, PeerROC: 1, PeerSeq: seqPtr(2)}, `{"call_id":"c1","peer_ssrc":9,"peer_roc":1,"peer_seq":2}`},
		{"stop-ack with C's stream index", &StopAck{CallID: "c1", PeerSSRC: 9, PeerROC: 0, PeerSeq: seqPtr(0)}, `{"call_id":"c1","peer_ssrc":9,"peer_seq":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := Encode(tt.m)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if string(p) != tt.want {
				t.Errorf("Encode = %s\nwant     %s", p, tt.want)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		typ     Type
		payload string
		want    Message // nil when an error is expected
		wantErr error
	}{
		{"unknown fields are ignored", TypeRinging, `{"call_id":"c1","future_field":{"x":[1,2]}}`, &Ringing{CallID: "c1"}, nil},
		{"empty object for an empty message", TypeKeepalive, `{}`, &Keepalive{}, nil},
		{"whitespace around the object", TypeCancel, " \n{\"call_id\":\"c1\"}\t", &Cancel{CallID: "c1"}, nil},
		{"unknown type", Type(150), `{}`, nil, ErrUnknownType},
		{"type zero", TypeUnknown, `{}`, nil, ErrUnknownType},
		{"not UTF-8", TypeError, "{\"code\":\"x\xff\"}", nil, ErrMalformed},
		{"not JSON", TypeRinging, `call_id=c1`, nil, ErrMalformed},
		{"empty payload", TypeKeepalive, ``, nil, ErrMalformed},
		{"JSON array", TypeKeepalive, `[]`, nil, ErrMalformed},
		{"trailing garbage", TypeRinging, `{"call_id":"c1"}x`, nil, ErrMalformed},
		{"wrong field type", TypeRinging, `{"call_id":7}`, nil, ErrMalformed},
		{"number for a string enum", TypeSetStatus, `{"status":1}`, nil, ErrMalformed},
		{"float for an int", TypeInvite, `{"call_id":"c1","from":"a/d","to":"b/p","codecs":["PCMU"],"media":{"addr":"127.0.0.1:8","ssrc":9,"ptime_ms":20.5}}`, nil, ErrMalformed},
		{"negative ssrc", TypeInvite, `{"call_id":"c1","from":"a/d","to":"b/p","codecs":["PCMU"],"media":{"addr":"127.0.0.1:8","ssrc":-1,"ptime_ms":20}}`, nil, ErrMalformed},
		{"bad base64 key", TypeLoginRequest, `{"user":"a","device":"d","password":"p","public_key":"!!","signal_addr":"127.0.0.1:1"}`, nil, ErrMalformed},
		{"valid JSON failing Validate", TypeRinging, `{}`, nil, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Decode(Frame{Type: tt.typ, Seq: 1, Payload: []byte(tt.payload)})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Decode error = %v, want %v", err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("Decode returned %#v with an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestValidName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    string
		want bool
	}{
		{"letters", "alice", true},
		{"digits first", "0day", true},
		{"all allowed", "a1._-z", true},
		{"max length", strings.Repeat("a", MaxNameLen), true},
		{"empty", "", false},
		{"too long", strings.Repeat("a", MaxNameLen+1), false},
		{"upper case", "Alice", false},
		{"leading dot", ".alice", false},
		{"leading dash", "-alice", false},
		{"leading underscore", "_alice", false},
		{"slash", "a/b", false},
		{"space", "a b", false},
		{"at sign", "a@b", false},
		{"non-ASCII", "alicé", false},
		{"NUL", "a\x00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ValidName(tt.s); got != tt.want {
				t.Errorf("ValidName(%q) = %v, want %v", tt.s, got, tt.want)
			}
		})
	}
}

func TestValidIdentity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    string
		want bool
	}{
		{"ok", "alice/laptop", true},
		{"no slash", "alice", false},
		{"empty user", "/laptop", false},
		{"empty device", "alice/", false},
		{"two slashes", "alice/lap/top", false},
		{"bad user", "Alice/laptop", false},
		{"bad device", "alice/.laptop", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ValidIdentity(tt.s); got != tt.want {
				t.Errorf("ValidIdentity(%q) = %v, want %v", tt.s, got, tt.want)
			}
		})
	}
}

// TestValidate has, for every rule in messages.go, a message that breaks
// exactly that rule. Each case starts from the valid sample of its type, so
// the failure can only come from the mutation.
func TestValidate(t *testing.T) {
	t.Parallel()
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name   string
		typ    Type
		mutate func(m Message)
		ok     bool // the mutation is still valid (boundary cases)
	}{
		// Error
		{"error: missing code", TypeError, func(m Message) { m.(*Error).Code = "" }, false},
		{"error: oversized code", TypeError, func(m Message) { m.(*Error).Code = ErrorCode(long(MaxNameLen + 1)) }, false},
		{"error: unknown code is allowed", TypeError, func(m Message) { m.(*Error).Code = "some-future-code" }, true},
		{"error: call id optional", TypeError, func(m Message) { m.(*Error).CallID = "" }, true},
		{"error: bad call id", TypeError, func(m Message) { m.(*Error).CallID = "c 1" }, false},
		{"error: message at limit", TypeError, func(m Message) { m.(*Error).Message = long(MaxReasonLen) }, true},
		{"error: oversized message", TypeError, func(m Message) { m.(*Error).Message = long(MaxReasonLen + 1) }, false},
		{"error: retry after", TypeError, func(m Message) { m.(*Error).RetryAfterMS = 10000 }, true},
		{"error: retry after at limit", TypeError, func(m Message) { m.(*Error).RetryAfterMS = MaxRetryAfterMS }, true},
		{"error: retry after too long", TypeError, func(m Message) { m.(*Error).RetryAfterMS = MaxRetryAfterMS + 1 }, false},
		{"error: negative retry after", TypeError, func(m Message) { m.(*Error).RetryAfterMS = -1 }, false},

		// LoginRequest
		{"login: bad user", TypeLoginRequest, func(m Message) { m.(*LoginRequest).User = "Alice" }, false},
		{"login: empty user", TypeLoginRequest, func(m Message) { m.(*LoginRequest).User = "" }, false},
		{"login: bad device", TypeLoginRequest, func(m Message) { m.(*LoginRequest).Device = "lap top" }, false},
		{"login: long device", TypeLoginRequest, func(m Message) { m.(*LoginRequest).Device = long(MaxNameLen + 1) }, false},
		{"login: empty password", TypeLoginRequest, func(m Message) { m.(*LoginRequest).Password = "" }, false},
		{"login: password at limit", TypeLoginRequest, func(m Message) { m.(*LoginRequest).Password = long(MaxPassword) }, true},
		{"login: oversized password", TypeLoginRequest, func(m Message) { m.(*LoginRequest).Password = long(MaxPassword + 1) }, false},
		{"login: missing public key", TypeLoginRequest, func(m Message) { m.(*LoginRequest).PublicKey = nil }, false},
		{"login: public key at limit", TypeLoginRequest, func(m Message) { m.(*LoginRequest).PublicKey = make([]byte, MaxKeyLen) }, true},
		{"login: oversized public key", TypeLoginRequest, func(m Message) { m.(*LoginRequest).PublicKey = make([]byte, MaxKeyLen+1) }, false},
		{"login: status omitted", TypeLoginRequest, func(m Message) { m.(*LoginRequest).Status = "" }, true},
		{"login: status offline", TypeLoginRequest, func(m Message) { m.(*LoginRequest).Status = StatusOffline }, false},
		{"login: unknown status", TypeLoginRequest, func(m Message) { m.(*LoginRequest).Status = "busy" }, false},
		{"login: missing signal addr", TypeLoginRequest, func(m Message) { m.(*LoginRequest).SignalAddr = "" }, false},
		{"login: signal addr without port", TypeLoginRequest, func(m Message) { m.(*LoginRequest).SignalAddr = "127.0.0.1" }, false},
		{"login: signal addr host name", TypeLoginRequest, func(m Message) { m.(*LoginRequest).SignalAddr = "localhost:7070" }, false},
		{"login: signal addr port 0", TypeLoginRequest, func(m Message) { m.(*LoginRequest).SignalAddr = "127.0.0.1:0" }, false},
		{"login: signal addr too long", TypeLoginRequest, func(m Message) {
			m.(*LoginRequest).SignalAddr = "[2001:db8::1%" + long(60) + "]:7070"
		}, false},
		{"login: signal addr IPv6", TypeLoginRequest, func(m Message) { m.(*LoginRequest).SignalAddr = "[::1]:7070" }, true},

		// LoginResponse
		{"login-response: missing certificate", TypeLoginResponse, func(m Message) { m.(*LoginResponse).Certificate = nil }, false},
		{"login-response: oversized certificate", TypeLoginResponse, func(m Message) { m.(*LoginResponse).Certificate = make([]byte, MaxCertLen+1) }, false},
		{"login-response: certificate at limit", TypeLoginResponse, func(m Message) { m.(*LoginResponse).Certificate = make([]byte, MaxCertLen) }, true},
		{"login-response: missing expiry", TypeLoginResponse, func(m Message) { m.(*LoginResponse).ExpiresUnix = 0 }, false},
		{"login-response: negative expiry", TypeLoginResponse, func(m Message) { m.(*LoginResponse).ExpiresUnix = -1 }, false},
		{"login-response: zero keepalive", TypeLoginResponse, func(m Message) { m.(*LoginResponse).KeepaliveMS = 0 }, false},
		{"login-response: negative keepalive", TypeLoginResponse, func(m Message) { m.(*LoginResponse).KeepaliveMS = -5 }, false},
		{"login-response: missing observed addr", TypeLoginResponse, func(m Message) { m.(*LoginResponse).ObservedAddr = "" }, false},
		{"login-response: bad observed addr", TypeLoginResponse, func(m Message) { m.(*LoginResponse).ObservedAddr = "127.0.0.1:99999" }, false},
		{"login-response: bad profile user", TypeLoginResponse, func(m Message) { m.(*LoginResponse).Profile.User = "" }, false},
		{"login-response: too many devices", TypeLoginResponse, func(m Message) {
			p := &m.(*LoginResponse).Profile
			p.Devices = make([]Device, MaxDevices+1)
			for i := range p.Devices {
				p.Devices[i] = Device{User: "alice", Device: "d", Status: StatusOffline}
			}
		}, false},
		{"login-response: devices at limit", TypeLoginResponse, func(m Message) {
			p := &m.(*LoginResponse).Profile
			p.Devices = make([]Device, MaxDevices)
			for i := range p.Devices {
				p.Devices[i] = Device{User: "alice", Device: "d", Status: StatusOffline}
			}
		}, true},
		{"login-response: own device bad name", TypeLoginResponse, func(m Message) { m.(*LoginResponse).Profile.Devices[0].Device = "Desk" }, false},
		{"login-response: own device bad user", TypeLoginResponse, func(m Message) { m.(*LoginResponse).Profile.Devices[0].User = "" }, false},
		{"login-response: own device bad status", TypeLoginResponse, func(m Message) { m.(*LoginResponse).Profile.Devices[0].Status = "" }, false},
		{"login-response: own device bad addr", TypeLoginResponse, func(m Message) { m.(*LoginResponse).Profile.Devices[0].SignalAddr = "nowhere" }, false},
		{"login-response: too many buddies", TypeLoginResponse, func(m Message) {
			p := &m.(*LoginResponse).Profile
			p.Buddies = make([]Buddy, MaxBuddies+1)
			for i := range p.Buddies {
				p.Buddies[i] = Buddy{User: "bob"}
			}
		}, false},
		{"login-response: buddies at limit", TypeLoginResponse, func(m Message) {
			p := &m.(*LoginResponse).Profile
			p.Buddies = make([]Buddy, MaxBuddies)
			for i := range p.Buddies {
				p.Buddies[i] = Buddy{User: "bob"}
			}
		}, true},
		{"login-response: bad buddy name", TypeLoginResponse, func(m Message) { m.(*LoginResponse).Profile.Buddies[1].User = "Carol" }, false},
		{"login-response: buddy with too many devices", TypeLoginResponse, func(m Message) {
			b := &m.(*LoginResponse).Profile.Buddies[0]
			b.Devices = make([]Device, MaxDevices+1)
			for i := range b.Devices {
				b.Devices[i] = Device{User: "bob", Device: "p", Status: StatusOffline}
			}
		}, false},
		{"login-response: buddy device bad status", TypeLoginResponse, func(m Message) { m.(*LoginResponse).Profile.Buddies[0].Devices[0].Status = "busy" }, false},
		{"login-response: buddy device bad addr", TypeLoginResponse, func(m Message) { m.(*LoginResponse).Profile.Buddies[0].Devices[0].SignalAddr = "[::1]:0" }, false},

		// SetStatus
		{"set-status: offline", TypeSetStatus, func(m Message) { m.(*SetStatus).Status = StatusOffline }, false},
		{"set-status: empty", TypeSetStatus, func(m Message) { m.(*SetStatus).Status = "" }, false},
		{"set-status: unknown", TypeSetStatus, func(m Message) { m.(*SetStatus).Status = "Online" }, false},
		{"set-status: away", TypeSetStatus, func(m Message) { m.(*SetStatus).Status = StatusAway }, true},

		// Presence
		{"presence: bad user", TypePresence, func(m Message) { m.(*Presence).Device.User = "" }, false},
		{"presence: bad device", TypePresence, func(m Message) { m.(*Presence).Device.Device = "a/b" }, false},
		{"presence: bad status", TypePresence, func(m Message) { m.(*Presence).Device.Status = "" }, false},
		{"presence: offline without addr", TypePresence, func(m Message) {
			m.(*Presence).Device.Status = StatusOffline
			m.(*Presence).Device.SignalAddr = ""
		}, true},
		{"presence: bad addr", TypePresence, func(m Message) { m.(*Presence).Device.SignalAddr = "127.0.0.1:x" }, false},

		// RenewResponse
		{"renew-response: missing certificate", TypeRenewResponse, func(m Message) { m.(*RenewResponse).Certificate = []byte{} }, false},
		{"renew-response: oversized certificate", TypeRenewResponse, func(m Message) { m.(*RenewResponse).Certificate = make([]byte, MaxCertLen+1) }, false},
		{"renew-response: missing expiry", TypeRenewResponse, func(m Message) { m.(*RenewResponse).ExpiresUnix = 0 }, false},

		// Invite
		{"invite: empty call id", TypeInvite, func(m Message) { m.(*Invite).CallID = "" }, false},
		{"invite: call id at limit", TypeInvite, func(m Message) { m.(*Invite).CallID = long(MaxCallIDLen) }, true},
		{"invite: oversized call id", TypeInvite, func(m Message) { m.(*Invite).CallID = long(MaxCallIDLen + 1) }, false},
		{"invite: call id with space", TypeInvite, func(m Message) { m.(*Invite).CallID = "c 1" }, false},
		{"invite: call id with control byte", TypeInvite, func(m Message) { m.(*Invite).CallID = "c\n1" }, false},
		{"invite: call id with DEL", TypeInvite, func(m Message) { m.(*Invite).CallID = "c\x7f" }, false},
		{"invite: call id non-ASCII", TypeInvite, func(m Message) { m.(*Invite).CallID = "cé" }, false},
		{"invite: from without device", TypeInvite, func(m Message) { m.(*Invite).From = "alice" }, false},
		{"invite: from bad name", TypeInvite, func(m Message) { m.(*Invite).From = "alice/Laptop" }, false},
		{"invite: to empty", TypeInvite, func(m Message) { m.(*Invite).To = "" }, false},
		{"invite: to bad", TypeInvite, func(m Message) { m.(*Invite).To = "bob/phone/x" }, false},
		{"invite: no codecs", TypeInvite, func(m Message) { m.(*Invite).Codecs = nil }, false},
		{"invite: codecs at limit", TypeInvite, func(m Message) { m.(*Invite).Codecs = strings.Fields(strings.Repeat("PCMU ", MaxCodecs)) }, true},
		{"invite: too many codecs", TypeInvite, func(m Message) { m.(*Invite).Codecs = strings.Fields(strings.Repeat("PCMU ", MaxCodecs+1)) }, false},
		{"invite: empty codec name", TypeInvite, func(m Message) { m.(*Invite).Codecs = []string{"PCMU", ""} }, false},
		{"invite: oversized codec name", TypeInvite, func(m Message) { m.(*Invite).Codecs = []string{long(MaxNameLen + 1)} }, false},
		{"invite: missing media addr", TypeInvite, func(m Message) { m.(*Invite).Media.Addr = "" }, false},
		{"invite: media addr host name", TypeInvite, func(m Message) { m.(*Invite).Media.Addr = "example.com:4000" }, false},
		{"invite: media addr port 0", TypeInvite, func(m Message) { m.(*Invite).Media.Addr = "127.0.0.2:0" }, false},
		{"invite: media addr without port", TypeInvite, func(m Message) { m.(*Invite).Media.Addr = "127.0.0.2" }, false},
		{"invite: plain RTP (no key)", TypeInvite, func(m Message) { m.(*Invite).Media.SRTPKey = nil }, true},
		{"invite: empty SRTP key", TypeInvite, func(m Message) { m.(*Invite).Media.SRTPKey = []byte{} }, false},
		{"invite: short SRTP key", TypeInvite, func(m Message) { m.(*Invite).Media.SRTPKey = make([]byte, 16) }, false},
		{"invite: long SRTP key", TypeInvite, func(m Message) { m.(*Invite).Media.SRTPKey = make([]byte, SRTPKeyLen+1) }, false},
		{"invite: ptime 0", TypeInvite, func(m Message) { m.(*Invite).Media.PtimeMS = 0 }, false},
		{"invite: ptime 10", TypeInvite, func(m Message) { m.(*Invite).Media.PtimeMS = 10 }, true},
		{"invite: ptime 60", TypeInvite, func(m Message) { m.(*Invite).Media.PtimeMS = 60 }, true},
		{"invite: ptime 70", TypeInvite, func(m Message) { m.(*Invite).Media.PtimeMS = 70 }, false},
		{"invite: ptime 25", TypeInvite, func(m Message) { m.(*Invite).Media.PtimeMS = 25 }, false},
		{"invite: ptime negative", TypeInvite, func(m Message) { m.(*Invite).Media.PtimeMS = -20 }, false},

		// Ringing, Cancel
		{"ringing: empty call id", TypeRinging, func(m Message) { m.(*Ringing).CallID = "" }, false},
		{"ringing: oversized call id", TypeRinging, func(m Message) { m.(*Ringing).CallID = long(MaxCallIDLen + 1) }, false},
		{"cancel: empty call id", TypeCancel, func(m Message) { m.(*Cancel).CallID = "" }, false},
		{"cancel: call id with tab", TypeCancel, func(m Message) { m.(*Cancel).CallID = "c\t1" }, false},

		// Accept
		{"accept: bad call id", TypeAccept, func(m Message) { m.(*Accept).CallID = "" }, false},
		{"accept: missing codec", TypeAccept, func(m Message) { m.(*Accept).Codec = "" }, false},
		{"accept: oversized codec", TypeAccept, func(m Message) { m.(*Accept).Codec = long(MaxNameLen + 1) }, false},
		{"accept: bad media addr", TypeAccept, func(m Message) { m.(*Accept).Media.Addr = "127.0.0.4" }, false},
		{"accept: wrong SRTP key length", TypeAccept, func(m Message) { m.(*Accept).Media.SRTPKey = make([]byte, 29) }, false},
		{"accept: bad ptime", TypeAccept, func(m Message) { m.(*Accept).Media.PtimeMS = 5 }, false},

		// Reject
		{"reject: bad call id", TypeReject, func(m Message) { m.(*Reject).CallID = "" }, false},
		{"reject: missing code", TypeReject, func(m Message) { m.(*Reject).Code = "" }, false},
		{"reject: oversized code", TypeReject, func(m Message) { m.(*Reject).Code = ErrorCode(long(MaxNameLen + 1)) }, false},
		{"reject: oversized reason", TypeReject, func(m Message) { m.(*Reject).Reason = long(MaxReasonLen + 1) }, false},
		{"reject: no reason", TypeReject, func(m Message) { m.(*Reject).Reason = "" }, true},

		// Bye
		{"bye: bad call id", TypeBye, func(m Message) { m.(*Bye).CallID = "" }, false},
		{"bye: oversized reason", TypeBye, func(m Message) { m.(*Bye).Reason = long(MaxReasonLen + 1) }, false},
		{"bye: reason at limit", TypeBye, func(m Message) { m.(*Bye).Reason = long(MaxReasonLen) }, true},

		// StopAck: C's stream index at step 5, all three fields or none
		{"stop-ack: bad call id", TypeStopAck, func(m Message) { m.(*StopAck).CallID = "" }, false},
		{"stop-ack: no index (an older B, or B has not heard C)", TypeStopAck, func(m Message) { *m.(*StopAck) = StopAck{CallID: "c1"} }, true},
		{"stop-ack: counter 0, sequence 0", TypeStopAck, func(m Message) { m.(*StopAck).PeerROC, m.(*StopAck).PeerSeq = 0, seqPtr(0) }, true},
		{"stop-ack: ssrc and counter without sequence", TypeStopAck, func(m Message) { m.(*StopAck).PeerSeq = nil }, false},
		{"stop-ack: counter without sequence", TypeStopAck, func(m Message) { *m.(*StopAck) = StopAck{CallID: "c1", PeerROC: 2} }, false},

		// ReestablishAck: C's own stream index, all three fields or none
		{"reestablish-ack: bad call id", TypeReestablishAck, func(m Message) { m.(*ReestablishAck).CallID = "" }, false},
		{"reestablish-ack: no index (an older C)", TypeReestablishAck, func(m Message) { *m.(*ReestablishAck) = ReestablishAck{CallID: "c1"} }, true},
		{"reestablish-ack: ssrc without sequence", TypeReestablishAck, func(m Message) { m.(*ReestablishAck).PeerSeq = nil }, false},

		// PushOffer
		{"push-offer: bad call id", TypePushOffer, func(m Message) { m.(*PushOffer).CallID = "" }, false},
		{"push-offer: from not an identity", TypePushOffer, func(m Message) { m.(*PushOffer).From = "alice" }, false},
		{"push-offer: peer optional", TypePushOffer, func(m Message) { m.(*PushOffer).Peer = "" }, true},
		{"push-offer: bad peer", TypePushOffer, func(m Message) { m.(*PushOffer).Peer = "Bob/x" }, false},

		// PushResult
		{"push-result: bad call id", TypePushResult, func(m Message) { m.(*PushResult).CallID = "c 1" }, false},
		{"push-result: missing handoff id", TypePushResult, func(m Message) { m.(*PushResult).HandoffID = "" }, false},
		{"push-result: unknown state", TypePushResult, func(m Message) { m.(*PushResult).State = "running" }, false},
		{"push-result: rolled back", TypePushResult, func(m Message) { m.(*PushResult).State = HandoffRolledBack }, true},
		{"push-result: error at limit", TypePushResult, func(m Message) { m.(*PushResult).Error = long(MaxReasonLen) }, true},
		{"push-result: oversized error", TypePushResult, func(m Message) { m.(*PushResult).Error = long(MaxReasonLen + 1) }, false},
		{"push-result: bad new address", TypePushResult, func(m Message) { m.(*PushResult).NewAddress = "127.0.0.3" }, false},
		{"push-result: no new address", TypePushResult, func(m Message) { m.(*PushResult).NewAddress = "" }, true},
		{"push-result: negative first audio", TypePushResult, func(m Message) { m.(*PushResult).FirstAudioUS = -1 }, false},
		{"push-result: too many steps", TypePushResult, func(m Message) {
			m.(*PushResult).Steps = make([]PushStep, MaxPushSteps+1)
			for i := range m.(*PushResult).Steps {
				m.(*PushResult).Steps[i].Step = 1
			}
		}, false},
		{"push-result: step 0", TypePushResult, func(m Message) { m.(*PushResult).Steps[0].Step = 0 }, false},
		{"push-result: step 13", TypePushResult, func(m Message) { m.(*PushResult).Steps[0].Step = 13 }, false},
		{"push-result: negative step time", TypePushResult, func(m Message) { m.(*PushResult).Steps[0].SinceStartUS = -5 }, false},
		{"push-result: title at limit", TypePushResult, func(m Message) { m.(*PushResult).Steps[0].Title = long(MaxStepText) }, true},
		{"push-result: oversized detail", TypePushResult, func(m Message) { m.(*PushResult).Steps[0].Detail = long(MaxStepText + 1) }, false},
		{"push-result: detail not UTF-8", TypePushResult, func(m Message) { m.(*PushResult).Steps[0].Detail = "\xff" }, false},

		// TransferRequest
		{"transfer-request: bad call id", TypeTransferRequest, func(m Message) { m.(*TransferRequest).CallID = "" }, false},
		{"transfer-request: from not an identity", TypeTransferRequest, func(m Message) { m.(*TransferRequest).From = "alice" }, false},
		{"transfer-request: target a device", TypeTransferRequest, func(m Message) { m.(*TransferRequest).Target = "carol/laptop" }, true},
		{"transfer-request: no target", TypeTransferRequest, func(m Message) { m.(*TransferRequest).Target = "" }, false},
		{"transfer-request: bad target", TypeTransferRequest, func(m Message) { m.(*TransferRequest).Target = "Carol/" }, false},
		{"transfer-request: target a SIP URI", TypeTransferRequest, func(m Message) { m.(*TransferRequest).Target = "sip:carol@gw" }, false},

		// TransferResult
		{"transfer-request: attended", TypeTransferRequest, attended(nil), true},
		{"transfer-request: replaces signed by another", TypeTransferRequest, attended(func(r *Replaces) { r.From = "alice/desk" }), false},
		{"transfer-request: replaces for another target", TypeTransferRequest, attended(func(r *Replaces) { r.Target = "dave/laptop" }), false},
		{"transfer-request: replaces the transferred call", TypeTransferRequest, attended(func(r *Replaces) { r.CallID = "c-7f3a9e" }), false},
		{"transfer-request: replaces bad call id", TypeTransferRequest, attended(func(r *Replaces) { r.CallID = "c 1" }), false},
		{"transfer-request: replaces to not an identity", TypeTransferRequest, attended(func(r *Replaces) { r.To = "bob" }), false},
		{"transfer-request: replaces to is the target", TypeTransferRequest, attended(func(r *Replaces) { r.To = "carol/laptop" }), false},
		{"transfer-request: replaces no expiry", TypeTransferRequest, attended(func(r *Replaces) { r.NotAfterUnix = 0 }), false},
		{"transfer-request: replaces short nonce", TypeTransferRequest, attended(func(r *Replaces) { r.Nonce = r.Nonce[:8] }), false},
		{"transfer-request: replaces no signature", TypeTransferRequest, attended(func(r *Replaces) { r.Signature = nil }), false},
		{"transfer-request: replaces oversized signature", TypeTransferRequest, attended(func(r *Replaces) { r.Signature = make([]byte, MaxReplacesSignatureLen+1) }), false},
		{"invite-replaces: caller is not the replaces' to", TypeInviteReplaces, func(m Message) { m.(*InviteReplaces).Invite.From = "dave/phone" }, false},
		{"invite-replaces: callee is not the target", TypeInviteReplaces, func(m Message) { m.(*InviteReplaces).Invite.To = "carol/desk" }, false},
		{"invite-replaces: replaces its own call", TypeInviteReplaces, func(m Message) { m.(*InviteReplaces).Replaces.CallID = "c-0123456789abcdef" }, false},
		{"invite-replaces: bad invite", TypeInviteReplaces, func(m Message) { m.(*InviteReplaces).Invite.Codecs = nil }, false},
		{"invite-replaces: bad replaces", TypeInviteReplaces, func(m Message) { m.(*InviteReplaces).Replaces.Nonce = nil }, false},
		{"transfer-result: bad call id", TypeTransferResult, func(m Message) { m.(*TransferResult).CallID = "c 1" }, false},
		{"transfer-result: unknown state", TypeTransferResult, func(m Message) { m.(*TransferResult).State = "ringing" }, false},
		{"transfer-result: done with a code", TypeTransferResult, func(m Message) { m.(*TransferResult).Code = CodeBusy }, false},
		{"transfer-result: failed without a code", TypeTransferResult, func(m Message) { m.(*TransferResult).State = TransferFailed }, false},
		{"transfer-result: failed", TypeTransferResult, func(m Message) {
			r := m.(*TransferResult)
			r.State, r.Code, r.Reason, r.NewCallID = TransferFailed, CodeNotFound, "no such user", ""
		}, true},
		{"transfer-result: bad new call id", TypeTransferResult, func(m Message) { m.(*TransferResult).NewCallID = "c\x001" }, false},
		{"transfer-result: oversized reason", TypeTransferResult, func(m Message) {
			r := m.(*TransferResult)
			r.State, r.Code, r.Reason = TransferFailed, CodeBusy, long(MaxReasonLen+1)
		}, false},
		{"transfer-result: oversized code", TypeTransferResult, func(m Message) {
			r := m.(*TransferResult)
			r.State, r.Code = TransferFailed, ErrorCode(long(MaxNameLen+1))
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := sampleMessages()[tt.typ]
			if err := m.Validate(); err != nil {
				t.Fatalf("sample %s invalid before mutation: %v", tt.typ, err)
			}
			tt.mutate(m)
			err := m.Validate()
			if tt.ok {
				if err != nil {
					t.Fatalf("Validate: %v, want ok", err)
				}
				return
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Validate = %v, want ErrMalformed", err)
			}
			// The error names the message type, so a log line says which
			// message was refused.
			if !strings.Contains(err.Error(), tt.typ.String()) {
				t.Errorf("error %q does not name the type %s", err, tt.typ)
			}
			// Encode refuses what Validate refuses: a sender never puts an
			// invalid message on the wire.
			if _, err := Encode(m); !errors.Is(err, ErrMalformed) {
				t.Errorf("Encode = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestValidateEmptyMessages(t *testing.T) {
	t.Parallel()
	for _, m := range []Message{&Keepalive{}, &KeepaliveAck{}, &Logout{}, &RenewRequest{}} {
		if err := m.Validate(); err != nil {
			t.Errorf("%s: Validate = %v", m.Type(), err)
		}
	}
}

// TestEncodedMessageDecodes checks the sender-side contract: whatever Encode
// accepts, the receiver's Decode accepts too, and yields the same message.
// encoding/json replaces each invalid UTF-8 byte with U+FFFD (3 bytes), so a
// string field that is within its byte limit but not valid UTF-8 changes in
// transit (a password no longer matches) and can grow past its limit, so
// the receiver refuses the message.
func TestEncodedMessageDecodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		m    Message
	}{
		{"error message of invalid bytes", &Error{Code: CodeInternal, Message: strings.Repeat("\xff", MaxReasonLen)}},
		{"error code of invalid bytes", &Error{Code: ErrorCode(strings.Repeat("\xff", MaxNameLen))}},
		{"reject reason of invalid bytes", &Reject{CallID: "c1", Code: CodeDeclined, Reason: strings.Repeat("\xfe", 100)}},
		{"reject code of invalid bytes", &Reject{CallID: "c1", Code: ErrorCode("busy\xff")}},
		{"bye reason of invalid bytes", &Bye{CallID: "c1", Reason: strings.Repeat("\x80", 200)}},
		{"codec name of invalid bytes", &Invite{CallID: "c1", From: "a/b", To: "c/d", Codecs: []string{strings.Repeat("\xc3", MaxNameLen)},
			Media: Media{Addr: "127.0.0.1:4000", PtimeMS: 20}}},
		{"accept codec of invalid bytes", &Accept{CallID: "c1", Codec: "PCM\xd5", Media: Media{Addr: "127.0.0.1:4000", PtimeMS: 20}}},
		{"password of invalid bytes", &LoginRequest{User: "a", Device: "b", Password: "pa\xffss", PublicKey: []byte{1},
			SignalAddr: "127.0.0.1:7070"}},
		{"address zone of invalid bytes", &LoginRequest{User: "a", Device: "b", Password: "p", PublicKey: []byte{1},
			SignalAddr: "[fe80::1%" + strings.Repeat("\xff", 40) + "]:7070"}},
		{"media address zone of invalid bytes", &Accept{CallID: "c1", Codec: "PCMU", Media: Media{Addr: "[fe80::1%\xff]:4000", PtimeMS: 20}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := Encode(tt.m)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("Encode = %v, want ErrMalformed", err)
				}
				return // refusing at the sender is a correct fix
			}
			got, err := Decode(Frame{Type: tt.m.Type(), Seq: 1, Payload: p})
			if err != nil {
				t.Fatalf("Encode accepted the message but Decode of its output fails: %v", err)
			}
			if !reflect.DeepEqual(emptyToNil(got), emptyToNil(tt.m)) {
				t.Errorf("message changed in transit:\nsent     %#v\nreceived %#v", tt.m, got)
			}
		})
	}
}

func TestAsError(t *testing.T) {
	t.Parallel()
	err := AsError(&Error{Code: CodeForbidden, Message: "not a buddy"})
	var re *RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("AsError = %T, want *RemoteError", err)
	}
	if re.Code != CodeForbidden || re.Message != "not a buddy" {
		t.Errorf("RemoteError = %+v", re)
	}
	if got, want := err.Error(), "remote error: forbidden: not a buddy"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := AsError(&Error{Code: CodeTimeout}).Error(), "remote error: timeout"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if err := AsError(&Ringing{CallID: "c1"}); err != nil {
		t.Errorf("AsError(ringing) = %v, want nil", err)
	}
}

func BenchmarkEncode(b *testing.B) {
	m := sampleMessages()[TypeInvite]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	p, err := Encode(sampleMessages()[TypeInvite])
	if err != nil {
		b.Fatal(err)
	}
	f := Frame{Type: TypeInvite, Seq: 1, Payload: p}
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if _, err := Decode(f); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTrimText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		n        int
		want     string
	}{
		{"short", "abc", 10, "abc"},
		{"cut", "abcdef", 4, "abcd"},
		{"at a rune boundary", "ab\u00e9cd", 3, "ab"},
		{"invalid bytes replaced", "a\xffb", 10, "a\uFFFDb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := TrimText(tc.in, tc.n)
			if got != tc.want || len(got) > tc.n || !utf8.ValidString(got) {
				t.Errorf("TrimText(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
			}
		})
	}
}

// attended returns a TestValidate mutation that makes the sample
// transfer-request attended (carol/laptop's call c-1b2c3d with alice
// replaced), then applies mut to its Replaces (nil: none).
func attended(mut func(r *Replaces)) func(m Message) {
	return func(m Message) {
		tr := m.(*TransferRequest)
		r := sampleReplaces()
		tr.Target, tr.Replaces = r.Target, &r
		if mut != nil {
			mut(&r)
		}
	}
}
