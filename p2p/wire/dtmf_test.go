package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestDTMFValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		m       DTMF
		wantErr string // substring of the error; "" = valid
	}{
		{"one digit", DTMF{CallID: "c-1", Digits: "5"}, ""},
		{"every digit", DTMF{CallID: "c-1", Digits: DTMFDigits}, ""},
		{"at the length limit", DTMF{CallID: "c-1", Digits: strings.Repeat("9", MaxDTMFDigits)}, ""},
		{"shortest duration", DTMF{CallID: "c-1", Digits: "1", DurationMS: MinDTMFDurationMS}, ""},
		{"longest duration", DTMF{CallID: "c-1", Digits: "1", DurationMS: MaxDTMFDurationMS}, ""},
		{"no call id", DTMF{Digits: "1"}, "call_id"},
		{"no digits", DTMF{CallID: "c-1"}, "no digits"},
		{"too many digits", DTMF{CallID: "c-1", Digits: strings.Repeat("1", MaxDTMFDigits+1)}, "33 digits, limit 32"},
		{"letter", DTMF{CallID: "c-1", Digits: "12x4"}, "character 'x' at position 3"},
		{"lower-case a", DTMF{CallID: "c-1", Digits: "a"}, "character 'a' at position 1"},
		{"E is no digit", DTMF{CallID: "c-1", Digits: "123E"}, "character 'E' at position 4"},
		{"space", DTMF{CallID: "c-1", Digits: "1 2"}, "character ' ' at position 2"},
		{"control byte", DTMF{CallID: "c-1", Digits: "1\x00"}, `character '\x00' at position 2`},
		{"UTF-8", DTMF{CallID: "c-1", Digits: "1é"}, `character '\xc3' at position 2`},
		{"duration too short", DTMF{CallID: "c-1", Digits: "1", DurationMS: MinDTMFDurationMS - 1}, "duration_ms 39"},
		{"duration too long", DTMF{CallID: "c-1", Digits: "1", DurationMS: MaxDTMFDurationMS + 1}, "duration_ms 5001"},
		{"negative duration", DTMF{CallID: "c-1", Digits: "1", DurationMS: -100}, "duration_ms -100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.m.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate(%+v) = %v, want nil", tt.m, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%+v) = nil, want an error with %q", tt.m, tt.wantErr)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v is not ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not say %q", err, tt.wantErr)
			}
		})
	}
}

// TestDTMFEventCodes pins the RFC 4733 §3.2 event codes, both ways.
func TestDTMFEventCodes(t *testing.T) {
	t.Parallel()
	want := map[byte]int{'0': 0, '1': 1, '5': 5, '9': 9, '*': 10, '#': 11, 'A': 12, 'B': 13, 'C': 14, 'D': 15}
	for d, ev := range want {
		if got := DTMFEvent(d); got != ev {
			t.Errorf("DTMFEvent(%q) = %d, want %d", d, got, ev)
		}
		if got, ok := DTMFDigit(uint8(ev)); !ok || got != d {
			t.Errorf("DTMFDigit(%d) = %q, %v, want %q", ev, got, ok, d)
		}
	}
	for _, d := range []byte{'a', 'E', ' ', '+', 0, 0xff} {
		if got := DTMFEvent(d); got != -1 {
			t.Errorf("DTMFEvent(%q) = %d, want -1", d, got)
		}
	}
	for _, ev := range []uint8{16, 17, 255} {
		if d, ok := DTMFDigit(ev); ok {
			t.Errorf("DTMFDigit(%d) = %q, want none (not a DTMF digit)", ev, d)
		}
	}
	for i := range len(DTMFDigits) {
		if DTMFEvent(DTMFDigits[i]) != i {
			t.Errorf("DTMFDigits[%d] = %q has event %d", i, DTMFDigits[i], DTMFEvent(DTMFDigits[i]))
		}
	}
}

func TestDTMFDecode(t *testing.T) {
	t.Parallel()
	m, err := Decode(Frame{Type: TypeDTMF, Seq: 1, Payload: []byte(`{"call_id":"c-1","digits":"*0#","duration_ms":80}`)})
	if err != nil {
		t.Fatal(err)
	}
	d, ok := m.(*DTMF)
	if !ok || d.Digits != "*0#" || d.DurationMS != 80 || d.CallID != "c-1" {
		t.Fatalf("decoded %#v", m)
	}
	_, err = Decode(Frame{Type: TypeDTMF, Seq: 1, Payload: []byte(`{"call_id":"c-1","digits":"12;4"}`)})
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "';' at position 3") {
		t.Fatalf("bad digit: err = %v", err)
	}
	if TypeDTMF.String() != "dtmf" {
		t.Errorf("TypeDTMF.String() = %q", TypeDTMF.String())
	}
}

// FuzzCheckDTMFDigits: a string is accepted exactly when it is 1 to
// MaxDTMFDigits characters of DTMFDigits; a refusal of a string of the
// right length names a character the string holds.
func FuzzCheckDTMFDigits(f *testing.F) {
	for _, s := range []string{"", "1", "123#", "12x4", DTMFDigits, "abcd", "\x00", strings.Repeat("1", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := CheckDTMFDigits(s)
		valid := s != "" && len(s) <= MaxDTMFDigits && strings.Trim(s, DTMFDigits) == ""
		if valid != (err == nil) {
			t.Fatalf("CheckDTMFDigits(%q) = %v, want valid=%v", s, err, valid)
		}
		if err != nil && s != "" && len(s) <= MaxDTMFDigits && !strings.Contains(err.Error(), "character ") {
			t.Fatalf("CheckDTMFDigits(%q) = %q names no character", s, err)
		}
	})
}
