package endpoint

import (
	"log/slog"
	"net"
	"net/netip"

	"github.com/baton-voice/baton/p2p/media"
	"github.com/baton-voice/baton/p2p/wire"
)

// A peer names its media address in signaling (invite, accept,
// reestablish, new-address), and a lying peer could name a third party's:
// the phone would then send 50 packets a second at a victim of the peer's
// choosing (a traffic reflector). So the media goes at full rate only to
// an address with consent (docs/operations.md, "Media consent"):
//   - one on the IP the peer's mutually authenticated signaling connection
//     comes from: a TCP connection proves that IP is the peer's, so at
//     worst the peer aims the media at its own host;
//   - or one that has proved it is the peer: an SRTP-authenticated packet
//     from exactly that address (media.Session latching).
// Anything else gets one consent probe a second until it proves itself,
// and consent lapses after media.DefaultConsentTimeout without an
// authenticated packet from the remote (RFC 7675 §5.1 in spirit).

// signalIP returns the IP conn's peer connects from (invalid if unknown).
func signalIP(conn *wire.Conn) netip.Addr {
	if conn == nil || conn.NetConn() == nil {
		return netip.Addr{}
	}
	if ta, ok := conn.NetConn().RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// aimMedia points sess at remote. It is confirmed when it is on the IP
// the peer's signaling on conn comes from, or when vouched is set (an
// earlier session of the call already had the peer's consent there);
// otherwise it must prove it receives first. It reports whether remote
// was confirmed.
func (c *call) aimMedia(sess *media.Session, remote netip.AddrPort, conn *wire.Conn, vouched bool) bool {
	return aimMedia(c.log, sess, remote, signalIP(conn), vouched)
}

// aimMedia is call.aimMedia with the signaling IP given.
func aimMedia(log *slog.Logger, sess *media.Session, remote netip.AddrPort, signal netip.Addr, vouched bool) bool {
	if vouched || (remote.IsValid() && remote.Addr().Unmap() == signal.Unmap()) {
		sess.SetRemote(remote)
		return true
	}
	sess.SetRemoteUnconfirmed(remote)
	log.Info("peer's media address is not on its signaling IP: consent probes only until it proves it receives",
		"remote_media", remote, "signal_ip", signal)
	return false
}
