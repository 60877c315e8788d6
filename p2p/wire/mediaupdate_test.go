package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestMediaUpdateValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		m       Message
		wantErr string // substring of the error; "" = valid
	}{
		{"hold", &MediaUpdate{CallID: "c-1", Version: 1, Direction: MediaSendOnly}, ""},
		{"codec change", &MediaUpdate{CallID: "c-1", Version: 9, Direction: MediaSendRecv, Codec: "PCMU", Reason: "codec-fallback"}, ""},
		{"highest version", &MediaUpdate{CallID: "c-1", Version: MaxMediaVersion, Direction: MediaInactive}, ""},
		{"no call id", &MediaUpdate{Version: 1, Direction: MediaSendOnly}, "call_id"},
		{"version 0", &MediaUpdate{CallID: "c-1", Direction: MediaSendOnly}, "version 0"},
		{"negative version", &MediaUpdate{CallID: "c-1", Version: -3, Direction: MediaSendOnly}, "version -3"},
		{"version too large", &MediaUpdate{CallID: "c-1", Version: MaxMediaVersion + 1, Direction: MediaSendOnly}, "version"},
		{"no direction", &MediaUpdate{CallID: "c-1", Version: 1}, `direction ""`},
		{"bad direction", &MediaUpdate{CallID: "c-1", Version: 1, Direction: "hold"}, `direction "hold"`},
		{"upper-case direction", &MediaUpdate{CallID: "c-1", Version: 1, Direction: "SENDONLY"}, `direction "SENDONLY"`},
		{"long codec", &MediaUpdate{CallID: "c-1", Version: 1, Direction: MediaSendRecv, Codec: strings.Repeat("x", MaxNameLen+1)}, "codec"},
		{"bad UTF-8 codec", &MediaUpdate{CallID: "c-1", Version: 1, Direction: MediaSendRecv, Codec: "\xff"}, "codec"},
		{"long reason", &MediaUpdate{CallID: "c-1", Version: 1, Direction: MediaSendRecv, Reason: strings.Repeat("r", MaxReasonLen+1)}, "reason"},
		{"ack accepted", &MediaUpdateAck{CallID: "c-1", Version: 1, Direction: MediaRecvOnly, Codec: "PCMU"}, ""},
		{"ack refused", &MediaUpdateAck{CallID: "c-1", Version: 1, Code: CodeGlare, Reason: "the caller's update wins"}, ""},
		{"ack refused with state", &MediaUpdateAck{CallID: "c-1", Version: 1, Code: CodeUnsupported, Direction: MediaSendRecv, Codec: "opus"}, ""},
		{"ack accepted without codec", &MediaUpdateAck{CallID: "c-1", Version: 1, Direction: MediaRecvOnly}, "codec"},
		{"ack accepted without direction", &MediaUpdateAck{CallID: "c-1", Version: 1, Codec: "PCMU"}, "direction"},
		{"ack refused bad direction", &MediaUpdateAck{CallID: "c-1", Version: 1, Code: CodeGlare, Direction: "x"}, "direction"},
		{"ack version 0", &MediaUpdateAck{CallID: "c-1", Direction: MediaRecvOnly, Codec: "PCMU"}, "version 0"},
		{"ack oversized code", &MediaUpdateAck{CallID: "c-1", Version: 1, Code: ErrorCode(strings.Repeat("c", MaxNameLen+1))}, "code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.m.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				p, err := Encode(tt.m)
				if err != nil {
					t.Fatalf("Encode: %v", err)
				}
				if _, err := Decode(Frame{Type: tt.m.Type(), Seq: 1, Payload: p}); err != nil {
					t.Fatalf("Decode(Encode): %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %#v, want an error with %q", tt.m, tt.wantErr)
			}
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate: %v, want ErrMalformed with %q", err, tt.wantErr)
			}
		})
	}
}

func TestMediaDirection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d                      MediaDirection
		sends, receives, holds bool
	}{
		{MediaSendRecv, true, true, false},
		{MediaSendOnly, true, false, true},
		{MediaRecvOnly, false, true, false},
		{MediaInactive, false, false, true},
	}
	for _, tt := range tests {
		if !tt.d.Valid() || tt.d.Sends() != tt.sends || tt.d.Receives() != tt.receives || tt.d.Holds() != tt.holds {
			t.Errorf("%s: valid %v sends %v receives %v holds %v", tt.d, tt.d.Valid(), tt.d.Sends(), tt.d.Receives(), tt.d.Holds())
		}
	}
	if MediaDirection("").Valid() || MediaDirection("both").Valid() {
		t.Error("an unknown direction is valid")
	}
}
