package codecs

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Registry is an ordered set of codecs. Order is preference: the first codec
// registered is the one this side prefers (it is listed first in an SDP offer,
// RFC 3264 §5.1). Names are unique case-insensitively and payload types are
// unique, so a registry maps both ways without ambiguity.
//
// A Registry is a value owned by whoever builds it (usually main); there is
// no global registry. All methods are safe for concurrent use: lookups take a
// read lock, Register and Unregister a write lock.
type Registry struct {
	mu     sync.RWMutex
	codecs []Codec // preference order
}

// NewRegistry returns a registry holding cs in the given (preference) order.
// It fails like Register on the first invalid or duplicate codec.
func NewRegistry(cs ...Codec) (*Registry, error) {
	r := &Registry{codecs: make([]Codec, 0, len(cs))}
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// DefaultRegistry returns a new registry with the built-in codecs in
// Baton's default preference order: PCMU, then PCMA. Each call returns a
// fresh registry the caller may change freely.
func DefaultRegistry() *Registry {
	return &Registry{codecs: []Codec{PCMU(), PCMA()}}
}

// Register appends c as the least preferred codec. It returns an error
// wrapping ErrInvalidDescriptor if c's descriptor is unusable, or
// ErrDuplicate if the registry already has a codec with the same name
// (case-insensitive) or payload type.
func (r *Registry) Register(c Codec) error {
	if c == nil {
		return fmt.Errorf("codecs: register: nil codec: %w", ErrInvalidDescriptor)
	}
	d := c.Descriptor()
	if err := validate(d); err != nil {
		return fmt.Errorf("codecs: register %q: %w", d.Name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, have := range r.codecs {
		hd := have.Descriptor()
		if strings.EqualFold(hd.Name, d.Name) {
			return fmt.Errorf("codecs: register %q: name already registered as %q: %w", d.Name, hd.Name, ErrDuplicate)
		}
		if hd.PayloadType == d.PayloadType {
			return fmt.Errorf("codecs: register %q: payload type %d already used by %q: %w", d.Name, d.PayloadType, hd.Name, ErrDuplicate)
		}
	}
	r.codecs = append(r.codecs, c)
	return nil
}

// Unregister removes the codec with the given name (case-insensitive),
// keeping the order of the others. It returns an error wrapping
// ErrUnknownCodec if there is no such codec.
func (r *Registry) Unregister(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := r.index(name)
	if i < 0 {
		return fmt.Errorf("codecs: unregister %q: %w", name, ErrUnknownCodec)
	}
	r.codecs = slices.Delete(r.codecs, i, i+1)
	return nil
}

// Lookup returns the codec with the given name, compared case-insensitively
// because SDP encoding names are (RFC 4566 §6, "rtpmap").
func (r *Registry) Lookup(name string) (Codec, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if i := r.index(name); i >= 0 {
		return r.codecs[i], true
	}
	return nil, false
}

// ByPayloadType returns the codec registered with RTP payload type pt.
func (r *Registry) ByPayloadType(pt uint8) (Codec, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, c := range r.codecs {
		if c.Descriptor().PayloadType == pt {
			return c, true
		}
	}
	return nil, false
}

// List returns the codecs in preference order. The slice is a copy.
func (r *Registry) List() []Codec {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.codecs)
}

// Names returns the codec names in preference order, spelled as their
// descriptors spell them.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.namesLocked()
}

// Negotiate picks the codec for an answer to an offer listing codec names in
// the offerer's preference order. It returns the first offered codec this
// registry has: the answerer keeps the offerer's order (RFC 3264 §6.1), so
// the registry's own order only matters when this side makes the offer.
// It returns an error wrapping ErrUnknownCodec, naming the offer, when there
// is no codec in common.
func (r *Registry) Negotiate(offer []string) (Codec, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, name := range offer {
		if i := r.index(name); i >= 0 {
			return r.codecs[i], nil
		}
	}
	return nil, fmt.Errorf("codecs: negotiate: none of offered %v is supported (have %v): %w", offer, r.namesLocked(), ErrUnknownCodec)
}

// Subset returns a new registry holding only the named codecs, in the order
// of names (which becomes the new preference order). It returns an error
// wrapping ErrUnknownCodec naming the first name this registry lacks, or
// ErrDuplicate if a name is listed twice.
func (r *Registry) Subset(names []string) (*Registry, error) {
	r.mu.RLock()
	cs := make([]Codec, 0, len(names))
	for _, name := range names {
		i := r.index(name)
		if i < 0 {
			have := r.namesLocked()
			r.mu.RUnlock()
			return nil, fmt.Errorf("codecs: subset: %q not in registry (have %v): %w", name, have, ErrUnknownCodec)
		}
		cs = append(cs, r.codecs[i])
	}
	r.mu.RUnlock()
	return NewRegistry(cs...)
}

// index returns the position of the named codec or -1. Callers hold r.mu.
func (r *Registry) index(name string) int {
	return slices.IndexFunc(r.codecs, func(c Codec) bool {
		return strings.EqualFold(c.Descriptor().Name, name)
	})
}

// namesLocked is Names for callers that already hold r.mu.
func (r *Registry) namesLocked() []string {
	names := make([]string, len(r.codecs))
	for i, c := range r.codecs {
		names[i] = c.Descriptor().Name
	}
	return names
}

// validate checks the parts of a descriptor the registry and the RTP/SDP
// layers rely on.
func validate(d Descriptor) error {
	switch {
	case d.Name == "":
		return fmt.Errorf("empty name: %w", ErrInvalidDescriptor)
	case strings.ContainsAny(d.Name, " \t\r\n/"):
		// The name goes into "a=rtpmap:<pt> <name>/<rate>" (RFC 4566 §6).
		return fmt.Errorf("name %q contains space or '/': %w", d.Name, ErrInvalidDescriptor)
	case d.PayloadType > 127:
		// RTP's payload type field is 7 bits (RFC 3550 §5.1).
		return fmt.Errorf("payload type %d outside 0..127: %w", d.PayloadType, ErrInvalidDescriptor)
	case d.SampleRate <= 0:
		return fmt.Errorf("sample rate %d: %w", d.SampleRate, ErrInvalidDescriptor)
	case d.ClockRate <= 0:
		return fmt.Errorf("clock rate %d: %w", d.ClockRate, ErrInvalidDescriptor)
	case d.Channels <= 0:
		return fmt.Errorf("channels %d: %w", d.Channels, ErrInvalidDescriptor)
	case d.FrameDuration < 0:
		return fmt.Errorf("frame duration %v: %w", d.FrameDuration, ErrInvalidDescriptor)
	}
	return nil
}
