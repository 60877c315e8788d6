package gateway

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/baton-voice/baton/p2p/wire"
)

// ErrBadTarget means a Request-URI user names no P2P user or device.
var ErrBadTarget = errors.New("gateway: not a P2P user or device")

// deviceSep separates user and device in a SIP user part: sip:bob+mobile@gw
// calls bob's device "mobile". A literal "/" (allowed in a SIP user part,
// RFC 3261 §25.1 user-unreserved) works too; "." cannot be used because it
// is legal inside P2P names.
const deviceSep = "+"

// dialTarget maps the user part of a Request-URI to a P2P call target:
// "bob" is the user bob (its best online device), "bob+mobile" and
// "bob/mobile" the device. Escapes (%2F) are undone first.
func dialTarget(user string) (string, error) {
	u, err := url.PathUnescape(user)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrBadTarget, user, err)
	}
	u = strings.ToLower(u)
	name, dev, hasDev := strings.Cut(u, deviceSep)
	if !hasDev {
		name, dev, hasDev = strings.Cut(u, "/")
	}
	if !wire.ValidName(name) || (hasDev && !wire.ValidName(dev)) {
		return "", fmt.Errorf("%w: %q", ErrBadTarget, user)
	}
	if hasDev {
		return name + "/" + dev, nil
	}
	return name, nil
}

// sipUser is the SIP user part that calls a P2P identity back: "bob/laptop"
// becomes "bob+laptop".
func sipUser(identity string) string {
	return strings.Replace(identity, "/", deviceSep, 1)
}
