package protocol

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/p2p/presence"
	"github.com/baton-voice/baton/plugins/internal/pb/policyv1"
	"github.com/baton-voice/baton/plugins/internal/pb/presencev1"
)

// RequestToPB converts a policy request for the wire.
func RequestToPB(r handoff.Request) *policyv1.DecideRequest {
	k := policyv1.Kind_KIND_UNSPECIFIED
	switch r.Kind {
	case handoff.KindQuery:
		k = policyv1.Kind_KIND_QUERY
	case handoff.KindPull:
		k = policyv1.Kind_KIND_PULL
	case handoff.KindTransfer:
		k = policyv1.Kind_KIND_TRANSFER
	}
	return &policyv1.DecideRequest{Kind: k, Requester: r.Requester, Owner: r.Owner, CallId: r.CallID, Peer: r.Peer}
}

// RequestFromPB is the inverse of RequestToPB.
func RequestFromPB(p *policyv1.DecideRequest) handoff.Request {
	k := handoff.KindUnknown
	switch p.GetKind() {
	case policyv1.Kind_KIND_QUERY:
		k = handoff.KindQuery
	case policyv1.Kind_KIND_PULL:
		k = handoff.KindPull
	case policyv1.Kind_KIND_TRANSFER:
		k = handoff.KindTransfer
	}
	return handoff.Request{Kind: k, Requester: p.GetRequester(), Owner: p.GetOwner(), CallID: p.GetCallId(), Peer: p.GetPeer()}
}

// StatusToPB converts a presence status; out-of-range values map to
// unspecified, which the store rejects as invalid.
func StatusToPB(s presence.Status) presencev1.Status {
	switch s {
	case presence.StatusOffline:
		return presencev1.Status_STATUS_OFFLINE
	case presence.StatusOnline:
		return presencev1.Status_STATUS_ONLINE
	case presence.StatusAway:
		return presencev1.Status_STATUS_AWAY
	}
	return presencev1.Status_STATUS_UNSPECIFIED
}

// StatusFromPB is the inverse of StatusToPB.
func StatusFromPB(s presencev1.Status) presence.Status {
	switch s {
	case presencev1.Status_STATUS_OFFLINE:
		return presence.StatusOffline
	case presencev1.Status_STATUS_ONLINE:
		return presence.StatusOnline
	case presencev1.Status_STATUS_AWAY:
		return presence.StatusAway
	}
	return presence.StatusUnknown
}

// EntryToPB converts an entry for the wire. Since keeps nanoseconds; the
// zero time travels as 0.
func EntryToPB(e presence.Entry) *presencev1.Entry {
	p := &presencev1.Entry{User: e.User, Device: e.Device, Status: StatusToPB(e.Status)}
	if e.SignalAddr.IsValid() {
		p.SignalAddr = e.SignalAddr.String()
	}
	if !e.Since.IsZero() {
		p.SinceUnixNano = e.Since.UnixNano()
	}
	return p
}

// EntryFromPB is the inverse of EntryToPB. Times come back in UTC.
func EntryFromPB(p *presencev1.Entry) (presence.Entry, error) {
	e := presence.Entry{User: p.GetUser(), Device: p.GetDevice(), Status: StatusFromPB(p.GetStatus())}
	if a := p.GetSignalAddr(); a != "" {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			return presence.Entry{}, fmt.Errorf("protocol: entry %s/%s: signal address %q: %w", e.User, e.Device, a, err)
		}
		e.SignalAddr = ap
	}
	if n := p.GetSinceUnixNano(); n != 0 {
		e.Since = time.Unix(0, n).UTC()
	}
	return e, nil
}
