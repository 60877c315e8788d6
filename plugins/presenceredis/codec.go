package presenceredis

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/baton-voice/baton/p2p/presence"
)

// ErrBadValue means a value read from Redis (an entry in a user's hash or an
// event on the channel) is not in the form this package writes: another
// program wrote the keys, or an incompatible version of this backend.
var ErrBadValue = errors.New("presenceredis: malformed value in Redis")

// An entry is stored as one hash field (the device) whose value is
//
//	STATUS|SINCE|ADDR
//
// STATUS is the presence.Status digit (1 offline, 2 online, 3 away; the Lua
// scripts test the first byte), SINCE the Unix time in nanoseconds (0 for
// the zero time) and ADDR "ip:port" or empty. An event on the channel is
// USER|DEVICE|STATUS|SINCE|ADDR. Names are pki.ValidName, which never holds
// '|'.

// encodeValue is the hash field value of e.
func encodeValue(e presence.Entry) string {
	var since int64
	if !e.Since.IsZero() {
		since = e.Since.UnixNano()
	}
	addr := ""
	if e.SignalAddr.IsValid() {
		addr = e.SignalAddr.String()
	}
	return strconv.Itoa(int(e.Status)) + "|" + strconv.FormatInt(since, 10) + "|" + addr
}

// encodeEvent is the channel message announcing e.
func encodeEvent(e presence.Entry) string {
	return e.User + "|" + e.Device + "|" + encodeValue(e)
}

// decodeValue parses a hash field value of user/device.
func decodeValue(user, device, v string) (presence.Entry, error) {
	st, rest, ok := strings.Cut(v, "|")
	if !ok {
		return presence.Entry{}, fmt.Errorf("%w: %s/%s: %q: want STATUS|SINCE|ADDR", ErrBadValue, user, device, v)
	}
	sinceS, addrS, ok := strings.Cut(rest, "|")
	if !ok {
		return presence.Entry{}, fmt.Errorf("%w: %s/%s: %q: want STATUS|SINCE|ADDR", ErrBadValue, user, device, v)
	}
	e := presence.Entry{User: user, Device: device}
	switch st {
	case "1":
		e.Status = presence.StatusOffline
	case "2":
		e.Status = presence.StatusOnline
	case "3":
		e.Status = presence.StatusAway
	default:
		return presence.Entry{}, fmt.Errorf("%w: %s/%s: status %q", ErrBadValue, user, device, st)
	}
	since, err := strconv.ParseInt(sinceS, 10, 64)
	if err != nil || since < 0 {
		return presence.Entry{}, fmt.Errorf("%w: %s/%s: since %q", ErrBadValue, user, device, sinceS)
	}
	if since != 0 {
		e.Since = time.Unix(0, since).UTC()
	}
	if addrS != "" {
		ap, err := netip.ParseAddrPort(addrS)
		if err != nil {
			return presence.Entry{}, fmt.Errorf("%w: %s/%s: signal address %q", ErrBadValue, user, device, addrS)
		}
		e.SignalAddr = ap
	}
	if err := e.Validate(); err != nil {
		return presence.Entry{}, fmt.Errorf("%w: %v", ErrBadValue, err)
	}
	return e, nil
}

// decodeEvent parses a channel message.
func decodeEvent(msg string) (presence.Entry, error) {
	user, rest, ok := strings.Cut(msg, "|")
	if !ok {
		return presence.Entry{}, fmt.Errorf("%w: event %q: want USER|DEVICE|STATUS|SINCE|ADDR", ErrBadValue, msg)
	}
	device, v, ok := strings.Cut(rest, "|")
	if !ok {
		return presence.Entry{}, fmt.Errorf("%w: event %q: want USER|DEVICE|STATUS|SINCE|ADDR", ErrBadValue, msg)
	}
	return decodeValue(user, device, v)
}
