package codecs

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fake is a codec with an arbitrary descriptor, for registry tests.
type fake struct{ d Descriptor }

func (f fake) Descriptor() Descriptor                    { return f.d }
func (fake) Encode(dst []byte, pcm []int16) (int, error) { return 0, nil }
func (fake) Decode(dst []int16, p []byte) (int, error)   { return 0, nil }

func opus() Codec {
	return fake{Descriptor{Name: "opus", PayloadType: 111, SampleRate: 48000, ClockRate: 48000, Channels: 2}}
}

func g722() Codec {
	// G.722 samples at 16 kHz but its RTP clock is 8000 (RFC 3551 §4.5.2).
	return fake{Descriptor{Name: "G722", PayloadType: 9, SampleRate: 16000, ClockRate: 8000, Channels: 1}}
}

func names(cs []Codec) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Descriptor().Name
	}
	return out
}

func TestDefaultRegistry(t *testing.T) {
	t.Parallel()
	a, b := DefaultRegistry(), DefaultRegistry()
	if got := a.Names(); !slices.Equal(got, []string{"PCMU", "PCMA"}) {
		t.Fatalf("Names() = %v, want [PCMU PCMA]", got)
	}
	// Each call is a fresh value: changing one leaves the other alone.
	if err := a.Unregister("PCMU"); err != nil {
		t.Fatal(err)
	}
	if got := b.Names(); !slices.Equal(got, []string{"PCMU", "PCMA"}) {
		t.Fatalf("second DefaultRegistry changed with the first: %v", got)
	}
}

func TestRegisterErrors(t *testing.T) {
	t.Parallel()
	valid := Descriptor{Name: "X", PayloadType: 100, SampleRate: 8000, ClockRate: 8000, Channels: 1}
	with := func(f func(*Descriptor)) Codec {
		d := valid
		f(&d)
		return fake{d}
	}
	tests := map[string]struct {
		codec   Codec
		wantErr error
		wantMsg string
	}{
		"nil codec":           {codec: nil, wantErr: ErrInvalidDescriptor, wantMsg: "nil codec"},
		"empty name":          {codec: with(func(d *Descriptor) { d.Name = "" }), wantErr: ErrInvalidDescriptor, wantMsg: "empty name"},
		"slash in name":       {codec: with(func(d *Descriptor) { d.Name = "PCMU/8000" }), wantErr: ErrInvalidDescriptor, wantMsg: `"PCMU/8000"`},
		"space in name":       {codec: with(func(d *Descriptor) { d.Name = "a b" }), wantErr: ErrInvalidDescriptor, wantMsg: "space"},
		"payload type 128":    {codec: with(func(d *Descriptor) { d.PayloadType = 128 }), wantErr: ErrInvalidDescriptor, wantMsg: "payload type 128"},
		"zero sample rate":    {codec: with(func(d *Descriptor) { d.SampleRate = 0 }), wantErr: ErrInvalidDescriptor, wantMsg: "sample rate 0"},
		"zero clock rate":     {codec: with(func(d *Descriptor) { d.ClockRate = 0 }), wantErr: ErrInvalidDescriptor, wantMsg: "clock rate 0"},
		"zero channels":       {codec: with(func(d *Descriptor) { d.Channels = 0 }), wantErr: ErrInvalidDescriptor, wantMsg: "channels 0"},
		"duplicate name":      {codec: with(func(d *Descriptor) { d.Name = "PCMU" }), wantErr: ErrDuplicate, wantMsg: `"PCMU"`},
		"duplicate name case": {codec: with(func(d *Descriptor) { d.Name = "pcmu" }), wantErr: ErrDuplicate, wantMsg: `"pcmu": name already registered as "PCMU"`},
		"duplicate payload":   {codec: with(func(d *Descriptor) { d.PayloadType = 8 }), wantErr: ErrDuplicate, wantMsg: `payload type 8 already used by "PCMA"`},
		"valid":               {codec: with(func(*Descriptor) {})},
		"valid pt 127":        {codec: with(func(d *Descriptor) { d.PayloadType = 127 })},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := DefaultRegistry()
			err := r.Register(tc.codec)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Register: %v", err)
				}
				if got := r.Names(); len(got) != 3 || got[2] != "X" {
					t.Fatalf("after Register, Names() = %v, want X appended last", got)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Register error = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Register error %q does not mention %q", err, tc.wantMsg)
			}
			if got := r.Names(); !slices.Equal(got, []string{"PCMU", "PCMA"}) {
				t.Errorf("failed Register changed the registry: %v", got)
			}
		})
	}
}

func TestNewRegistryRejectsDuplicates(t *testing.T) {
	t.Parallel()
	r, err := NewRegistry(PCMU(), PCMA(), PCMU())
	if !errors.Is(err, ErrDuplicate) || r != nil {
		t.Fatalf("NewRegistry(PCMU, PCMA, PCMU) = %v, %v; want nil, ErrDuplicate", r, err)
	}
	if !strings.Contains(err.Error(), "PCMU") {
		t.Errorf("error %q does not name the codec", err)
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	r, err := NewRegistry(opus(), PCMA(), g722())
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		name string
		want string // "" = not found
	}{
		"exact":      {name: "PCMA", want: "PCMA"},
		"lower case": {name: "pcma", want: "PCMA"},
		"mixed case": {name: "OpUs", want: "opus"},
		"absent":     {name: "PCMU"},
		"empty":      {name: ""},
		"prefix":     {name: "PCM"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, ok := r.Lookup(tc.name)
			if tc.want == "" {
				if ok || c != nil {
					t.Fatalf("Lookup(%q) = %v, %v; want nil, false", tc.name, c, ok)
				}
				return
			}
			if !ok || c.Descriptor().Name != tc.want {
				t.Fatalf("Lookup(%q) = %v, %v; want %s", tc.name, c, ok, tc.want)
			}
		})
	}
}

func TestByPayloadType(t *testing.T) {
	t.Parallel()
	r, err := NewRegistry(opus(), PCMU(), PCMA(), g722())
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		pt   uint8
		want string
	}{
		"static 0":    {pt: 0, want: "PCMU"},
		"static 8":    {pt: 8, want: "PCMA"},
		"static 9":    {pt: 9, want: "G722"},
		"dynamic 111": {pt: 111, want: "opus"},
		"absent 18":   {pt: 18},
		"absent 127":  {pt: 127},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, ok := r.ByPayloadType(tc.pt)
			if tc.want == "" {
				if ok {
					t.Fatalf("ByPayloadType(%d) = %v; want not found", tc.pt, c.Descriptor().Name)
				}
				return
			}
			if !ok || c.Descriptor().Name != tc.want {
				t.Fatalf("ByPayloadType(%d) = %v, %v; want %s", tc.pt, c, ok, tc.want)
			}
		})
	}
}

func TestUnregister(t *testing.T) {
	t.Parallel()
	r, err := NewRegistry(PCMU(), opus(), PCMA())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Unregister("OPUS"); err != nil {
		t.Fatalf("Unregister(OPUS): %v", err)
	}
	if got := r.Names(); !slices.Equal(got, []string{"PCMU", "PCMA"}) {
		t.Fatalf("after Unregister, Names() = %v, want [PCMU PCMA]", got)
	}
	if _, ok := r.ByPayloadType(111); ok {
		t.Error("payload type 111 still registered")
	}
	err = r.Unregister("opus")
	if !errors.Is(err, ErrUnknownCodec) || !strings.Contains(err.Error(), `"opus"`) {
		t.Fatalf("second Unregister = %v, want ErrUnknownCodec naming opus", err)
	}
	// Symmetric with Register: the name and payload type are free again.
	if err := r.Register(opus()); err != nil {
		t.Fatalf("Register after Unregister: %v", err)
	}
	if got := r.Names(); !slices.Equal(got, []string{"PCMU", "PCMA", "opus"}) {
		t.Fatalf("Names() = %v, want opus re-added last", got)
	}
}

func TestListIsCopy(t *testing.T) {
	t.Parallel()
	r := DefaultRegistry()
	l := r.List()
	l[0] = opus()
	if got := names(r.List()); !slices.Equal(got, []string{"PCMU", "PCMA"}) {
		t.Fatalf("changing List() result changed the registry: %v", got)
	}
	n := r.Names()
	n[0] = "X"
	if got := r.Names(); got[0] != "PCMU" {
		t.Fatalf("changing Names() result changed the registry: %v", got)
	}
}

func TestNegotiate(t *testing.T) {
	t.Parallel()
	// Our preference is PCMA first; the answer must still follow the offer.
	r, err := NewRegistry(PCMA(), PCMU())
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		offer   []string
		want    string
		wantMsg string // error text when no match
	}{
		"offerer order wins":     {offer: []string{"PCMU", "PCMA"}, want: "PCMU"},
		"offerer prefers ours":   {offer: []string{"PCMA", "PCMU"}, want: "PCMA"},
		"skips unknown":          {offer: []string{"opus", "G722", "PCMA"}, want: "PCMA"},
		"case-insensitive":       {offer: []string{"pcmu"}, want: "PCMU"},
		"nothing in common":      {offer: []string{"opus", "G722"}, wantMsg: "[opus G722]"},
		"empty offer":            {offer: nil, wantMsg: "[]"},
		"duplicate offer tokens": {offer: []string{"G729", "G729", "pcma"}, want: "PCMA"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := r.Negotiate(tc.offer)
			if tc.want == "" {
				if !errors.Is(err, ErrUnknownCodec) || c != nil {
					t.Fatalf("Negotiate(%v) = %v, %v; want ErrUnknownCodec", tc.offer, c, err)
				}
				if !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("error %q does not name the offer %s", err, tc.wantMsg)
				}
				return
			}
			if err != nil || c.Descriptor().Name != tc.want {
				t.Fatalf("Negotiate(%v) = %v, %v; want %s", tc.offer, c, err, tc.want)
			}
		})
	}
}

func TestSubset(t *testing.T) {
	t.Parallel()
	r, err := NewRegistry(PCMU(), PCMA(), opus())
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		names   []string
		want    []string
		wantErr error
		wantMsg string
	}{
		"reorders":     {names: []string{"opus", "PCMU"}, want: []string{"opus", "PCMU"}},
		"case":         {names: []string{"pcma"}, want: []string{"PCMA"}},
		"empty":        {names: nil, want: []string{}},
		"unknown name": {names: []string{"PCMU", "G729"}, wantErr: ErrUnknownCodec, wantMsg: `"G729"`},
		"listed twice": {names: []string{"PCMU", "pcmu"}, wantErr: ErrDuplicate, wantMsg: "PCMU"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sub, err := r.Subset(tc.names)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || sub != nil {
					t.Fatalf("Subset(%v) = %v, %v; want %v", tc.names, sub, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("error %q does not mention %s", err, tc.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("Subset(%v): %v", tc.names, err)
			}
			if got := sub.Names(); !slices.Equal(got, tc.want) {
				t.Fatalf("Subset(%v).Names() = %v, want %v", tc.names, got, tc.want)
			}
		})
	}
	// The subset is independent of its parent.
	sub, err := r.Subset([]string{"PCMU"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Unregister("PCMU"); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Lookup("PCMU"); !ok {
		t.Fatal("Unregister on a subset removed the codec from its parent")
	}
}

// TestRegistryConcurrent exercises readers against writers under -race.
func TestRegistryConcurrent(t *testing.T) {
	t.Parallel()
	r := DefaultRegistry()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				if _, ok := r.Lookup("PCMA"); !ok {
					t.Error("PCMA vanished")
					return
				}
				_, _ = r.Negotiate([]string{"opus", "PCMU"})
				_ = r.List()
			}
		})
	}
	wg.Go(func() {
		for range 200 {
			if err := r.Register(opus()); err != nil {
				t.Error(err)
				return
			}
			if err := r.Unregister("opus"); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
}
