package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// problems collects every validation failure so a user fixes a config in
// one round instead of one error per run.
type problems struct{ errs []error }

// add records `config: key: value: reason`, wrapping ErrInvalid.
func (p *problems) add(key string, value any, reason string) {
	p.errs = append(p.errs, &keyError{
		msg: fmt.Sprintf("config: %s: %s: %s", key, show(value), reason),
		err: ErrInvalid,
	})
}

func (p *problems) err() error { return errors.Join(p.errs...) }

// shown is a value already formatted by show.
type shown string

// show formats a value the way a user would write it in the file.
func show(v any) string {
	switch v := v.(type) {
	case shown:
		return string(v)
	case string:
		return strconv.Quote(v)
	case time.Duration:
		return strconv.Quote(v.String())
	case []string:
		return fmt.Sprintf("%q", v)
	default:
		return fmt.Sprint(v)
	}
}

func (p *problems) required(key, v string) {
	if strings.TrimSpace(v) == "" {
		p.add(key, v, "required")
	}
}

// listenAddr checks a local listening address. The host may be empty (all
// interfaces), an IP or a name; port 0 asks the kernel for a free port.
// optional means "" is allowed and turns the listener off.
func (p *problems) listenAddr(key, v string, optional bool) {
	if v == "" && optional {
		return
	}
	host, ok := p.hostPort(key, v, 0)
	if ok && host != "" && !validHost(host) {
		p.add(key, v, "invalid host")
	}
}

// dialAddr checks an address to connect to: host required, port 1..65535.
func (p *problems) dialAddr(key, v string) {
	host, ok := p.hostPort(key, v, 1)
	if !ok {
		return
	}
	if host == "" || !validHost(host) {
		p.add(key, v, "invalid host")
	}
}

func (p *problems) hostPort(key, v string, minPort uint64) (string, bool) {
	if v == "" {
		p.add(key, v, "required")
		return "", false
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		p.add(key, v, "want host:port")
		return "", false
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n < minPort {
		p.add(key, v, "invalid port")
		return "", false
	}
	return host, true
}

// validHost accepts an IP address or a DNS name (RFC 1123 §2.1 labels).
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !isLowerAlnum(c|0x20) && c != '-' {
				return false
			}
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// mediaIP checks an address we put in our own session descriptions, so it
// must be one peers can send to: the unspecified address is not.
func (p *problems) mediaIP(key, v string) {
	a, err := netip.ParseAddr(v)
	switch {
	case err != nil:
		p.add(key, v, "invalid IP address")
	case a.IsUnspecified() || a.IsMulticast():
		p.add(key, v, "want a unicast address peers can send to")
	}
}

// name checks a user or device name: 1-64 of [a-z0-9._-], starting with a
// letter or digit, so it is safe in paths, URIs and certificate names.
func (p *problems) name(key, v string) {
	if v == "" {
		p.add(key, v, "required")
		return
	}
	ok := len(v) <= 64 && isLowerAlnum(v[0])
	for _, c := range []byte(v) {
		if !isLowerAlnum(c) && c != '.' && c != '_' && c != '-' {
			ok = false
		}
	}
	if !ok {
		p.add(key, v, "want 1-64 characters of a-z 0-9 . _ -, starting with a letter or digit")
	}
}

// target checks a P2P call target: user or user/device.
func (p *problems) target(key, v string) {
	user, dev, ok := strings.Cut(v, "/")
	p.name(key, user)
	if ok {
		p.name(key, dev)
	}
}

func (p *problems) durationRange(key string, d, lo, hi time.Duration) {
	if d < lo || d > hi {
		p.add(key, d, fmt.Sprintf("want %v to %v", lo, hi))
	}
}

// hz checks a tone frequency: positive and below 4000 Hz, the Nyquist limit
// of the 8 kHz narrowband codecs.
func (p *problems) hz(key string, v int) {
	if v <= 0 || v >= 4000 {
		p.add(key, v, "want a frequency between 0 and 4000 Hz, exclusive")
	}
}

// list checks a non-empty list of distinct, non-blank entries; fold makes
// the duplicate check case-insensitive (codec names, RFC 4566 §6; DNS names).
func (p *problems) list(key string, v []string) {
	if len(v) == 0 {
		p.add(key, v, "must not be empty")
		return
	}
	for i, s := range v {
		if strings.TrimSpace(s) == "" || strings.ContainsAny(s, " \t\r\n") {
			p.add(key, v, fmt.Sprintf("entry %d: want a name without spaces", i))
			continue
		}
		for _, prev := range v[:i] {
			if strings.EqualFold(prev, s) {
				p.add(key, v, fmt.Sprintf("duplicate %q", s))
				break
			}
		}
	}
}
