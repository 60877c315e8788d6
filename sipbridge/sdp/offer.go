package sdp

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	psdp "github.com/pion/sdp/v3"
)

// Codec is one payload type of an audio m= line with its rtpmap
// (RFC 4566 §6: a=rtpmap:<pt> <name>/<clock rate>[/<channels>]).
type Codec struct {
	PT        uint8
	Name      string // as written in the rtpmap (or the static name); compare with strings.EqualFold
	ClockRate int    // RTP clock rate in Hz; 0 when unknown (dynamic PT without rtpmap)
	Channels  int    // 0 when not given (means 1)
	Fmtp      string // a=fmtp parameters, "" when absent
}

// Offer is the typed view of one side of an offer/answer exchange: the first
// audio stream of an SDP body. Answers built by this package use it too.
type Offer struct {
	SessionID      uint64
	SessionVersion uint64     // o= version (RFC 3264 §8: incremented on every change)
	Addr           netip.Addr // c= address, media level over session level
	Port           int        // m= port; 0 means the stream is rejected/disabled
	Codecs         []Codec    // in the order of the m= line, telephone-event included
	PTime          int        // a=ptime in ms, 0 when absent
	// TelephoneEventPT is the RFC 4733 payload type, -1 when not offered.
	TelephoneEventPT int
	Direction        Direction // SendRecv when the body has no direction attribute
	// Secure is set when the m= line's profile is RTP/SAVP (RFC 3711
	// §12); otherwise it is RTP/AVP.
	Secure bool
	// Crypto are the m= line's a=crypto attributes in order (RFC 4568),
	// nil when none.
	Crypto []Crypto
	// RTCPPort is the a=rtcp port (RFC 3605 §2.1), 0 when absent: RTCP
	// then goes to the RTP port + 1 (RFC 3550 §11). RTCPAddr is its
	// optional address, the zero Addr when the attribute names none (the
	// c= address then). RTCPMux is a=rtcp-mux (RFC 5761 §5.1.1): RTCP on
	// the RTP port.
	RTCPPort int
	RTCPAddr netip.Addr
	RTCPMux  bool
}

// RTCPDest is where the far side takes RTCP: the RTP address with
// rtcp-mux, the a=rtcp port (and address) when given, else the RTP port
// + 1 (RFC 3550 §11). Invalid when the stream is rejected.
func (o *Offer) RTCPDest() netip.AddrPort {
	if o.Port <= 0 || !o.Addr.IsValid() || o.Addr.IsUnspecified() {
		return netip.AddrPort{}
	}
	switch {
	case o.RTCPMux:
		return netip.AddrPortFrom(o.Addr, uint16(o.Port))
	case o.RTCPPort > 0:
		addr := o.Addr
		if o.RTCPAddr.IsValid() {
			addr = o.RTCPAddr
		}
		return netip.AddrPortFrom(addr, uint16(o.RTCPPort))
	case o.Port < 65535:
		return netip.AddrPortFrom(o.Addr, uint16(o.Port+1))
	}
	return netip.AddrPort{}
}

// parseRTCP parses an a=rtcp value (RFC 3605 §2.1: port [nettype addrtype
// connection-address]).
func parseRTCP(v string) (int, netip.Addr, error) {
	bad := fmt.Errorf("%w: rtcp %q", ErrInvalid, v)
	f := strings.Fields(v)
	if len(f) != 1 && len(f) != 4 {
		return 0, netip.Addr{}, bad
	}
	port, err := strconv.Atoi(f[0])
	if err != nil || port <= 0 || port > 65535 || strconv.Itoa(port) != f[0] {
		return 0, netip.Addr{}, bad
	}
	if len(f) == 1 {
		return port, netip.Addr{}, nil
	}
	addr, err := netip.ParseAddr(f[3])
	if f[1] != "IN" || (f[2] != "IP4" && f[2] != "IP6") || err != nil || addr.Zone() != "" || addr.Is4() != (f[2] == "IP4") || addr.Is4In6() {
		return 0, netip.Addr{}, bad
	}
	return port, addr, nil
}

// Codec returns the offered codec with the name (case-insensitive).
func (o *Offer) Codec(name string) (Codec, bool) {
	for _, c := range o.Codecs {
		if strings.EqualFold(c.Name, name) {
			return c, true
		}
	}
	return Codec{}, false
}

// Held reports whether the far side does not want to receive media from us
// (sendonly or inactive: RFC 3264 §8.4 hold).
func (o *Offer) Held() bool { return o.Direction == SendOnly || o.Direction == Inactive }

// static payload types (RFC 3551 §6) used when an offer omits the rtpmap.
var staticPT = map[uint8]Codec{
	0:  {PT: 0, Name: "PCMU", ClockRate: 8000},
	3:  {PT: 3, Name: "GSM", ClockRate: 8000},
	8:  {PT: 8, Name: "PCMA", ClockRate: 8000},
	9:  {PT: 9, Name: "G722", ClockRate: 8000},
	18: {PT: 18, Name: "G729", ClockRate: 8000},
}

// ParseOffer parses an SDP body and returns its first audio stream.
func ParseOffer(body []byte) (*Offer, error) {
	var sd psdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var md *psdp.MediaDescription
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media == "audio" {
			md = m
			break
		}
	}
	if md == nil {
		return nil, ErrNoAudio
	}
	o := &Offer{
		SessionID:        sd.Origin.SessionID,
		SessionVersion:   sd.Origin.SessionVersion,
		Port:             md.MediaName.Port.Value,
		TelephoneEventPT: -1,
		Direction:        SendRecv,
	}
	switch strings.Join(md.MediaName.Protos, "/") {
	case "RTP/SAVP":
		o.Secure = true
	case "RTP/AVP":
	default:
		// Other profiles (RTP/SAVPF, UDP/TLS/RTP/SAVP of DTLS-SRTP) are
		// not ours: refuse them rather than answer with another one.
		return nil, fmt.Errorf("%w: m=audio profile %q (want RTP/AVP or RTP/SAVP)", ErrInvalid, strings.Join(md.MediaName.Protos, "/"))
	}
	if o.Port < 0 || o.Port > 65535 {
		return nil, fmt.Errorf("%w: port %d", ErrInvalid, o.Port)
	}
	ci := md.ConnectionInformation
	if ci == nil {
		ci = sd.ConnectionInformation
	}
	if ci == nil || ci.Address == nil {
		return nil, fmt.Errorf("%w: no c= line", ErrInvalid)
	}
	addr, err := netip.ParseAddr(ci.Address.Address)
	if err != nil || addr.Zone() != "" {
		return nil, fmt.Errorf("%w: connection address %q", ErrInvalid, ci.Address.Address)
	}
	o.Addr = addr.Unmap()

	rtpmap := map[uint8]Codec{}
	fmtp := map[uint8]string{}
	attrs := func(list []psdp.Attribute) error {
		for _, a := range list {
			switch a.Key {
			case "rtpmap":
				c, err := parseRTPMap(a.Value)
				if err != nil {
					return err
				}
				rtpmap[c.PT] = c
			case "fmtp":
				pt, rest, ok := strings.Cut(a.Value, " ")
				n, err := strconv.ParseUint(pt, 10, 7)
				if !ok || err != nil {
					return fmt.Errorf("%w: fmtp %q", ErrInvalid, a.Value)
				}
				rest = strings.TrimSpace(rest)
				if !validFmtp(rest) {
					return fmt.Errorf("%w: fmtp %q", ErrInvalid, a.Value)
				}
				fmtp[uint8(n)] = rest
			case "ptime":
				n, err := strconv.Atoi(a.Value)
				if err != nil || n <= 0 || n > 1000 {
					return fmt.Errorf("%w: ptime %q", ErrInvalid, a.Value)
				}
				o.PTime = n
			default:
				if d := parseDirection(a.Key); d != DirectionUnknown {
					o.Direction = d
				}
			}
		}
		return nil
	}
	// Session-level attributes first, media-level ones override (RFC 4566 §5).
	if err := attrs(sd.Attributes); err != nil {
		return nil, err
	}
	if err := attrs(md.Attributes); err != nil {
		return nil, err
	}
	// a=rtcp (RFC 3605 §2.1) and a=rtcp-mux (RFC 5761 §5.1.1) are
	// media-level attributes.
	for _, a := range md.Attributes {
		switch a.Key {
		case "rtcp":
			if o.RTCPPort != 0 {
				return nil, fmt.Errorf("%w: a=rtcp given twice", ErrInvalid)
			}
			port, addr, err := parseRTCP(a.Value)
			if err != nil {
				return nil, err
			}
			o.RTCPPort, o.RTCPAddr = port, addr
		case "rtcp-mux":
			if a.Value != "" {
				return nil, fmt.Errorf("%w: rtcp-mux %q takes no value", ErrInvalid, a.Value)
			}
			o.RTCPMux = true
		}
	}
	// a=crypto is a media-level attribute (RFC 4568 §9.1); tags are
	// unique within the m= line (§6.1).
	for _, a := range md.Attributes {
		if a.Key != "crypto" {
			continue
		}
		c, err := ParseCrypto(a.Value)
		if err != nil {
			return nil, err
		}
		for _, prev := range o.Crypto {
			if prev.Tag == c.Tag {
				return nil, fmt.Errorf("%w: %w: a=crypto: duplicate tag %d", ErrInvalid, ErrCrypto, c.Tag)
			}
		}
		o.Crypto = append(o.Crypto, c)
	}
	seen := map[uint8]bool{}
	for _, f := range md.MediaName.Formats {
		n, err := strconv.ParseUint(f, 10, 7)
		if err != nil || strconv.FormatUint(n, 10) != f {
			return nil, fmt.Errorf("%w: payload type %q", ErrInvalid, f)
		}
		pt := uint8(n)
		if seen[pt] {
			return nil, fmt.Errorf("%w: duplicate payload type %d", ErrInvalid, pt)
		}
		seen[pt] = true
		c, ok := rtpmap[pt]
		if !ok {
			c, ok = staticPT[pt]
			if !ok {
				c = Codec{PT: pt}
			}
		}
		c.Fmtp = fmtp[pt]
		if strings.EqualFold(c.Name, "telephone-event") && o.TelephoneEventPT < 0 {
			o.TelephoneEventPT = int(pt)
		}
		o.Codecs = append(o.Codecs, c)
	}
	return o, nil
}

func parseRTPMap(v string) (Codec, error) {
	bad := fmt.Errorf("%w: rtpmap %q", ErrInvalid, v)
	pt, enc, ok := strings.Cut(v, " ")
	if !ok {
		return Codec{}, bad
	}
	n, err := strconv.ParseUint(pt, 10, 7)
	if err != nil {
		return Codec{}, bad
	}
	parts := strings.Split(strings.TrimSpace(enc), "/")
	if len(parts) < 2 || len(parts) > 3 || !validToken(parts[0]) {
		return Codec{}, bad
	}
	c := Codec{PT: uint8(n), Name: parts[0]}
	if c.ClockRate, err = strconv.Atoi(parts[1]); err != nil || c.ClockRate <= 0 || c.ClockRate > 1_000_000 {
		return Codec{}, bad
	}
	if len(parts) == 3 {
		if c.Channels, err = strconv.Atoi(parts[2]); err != nil || c.Channels <= 0 || c.Channels > 255 {
			return Codec{}, bad
		}
	}
	return c, nil
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == '+':
		default:
			return false
		}
	}
	return true
}

// validFmtp accepts printable ASCII without line breaks, so that a parsed
// value re-marshals to the same bytes.
func validFmtp(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Marshal renders the offer as an SDP body (RFC 4566) with one audio stream.
func (o *Offer) Marshal() ([]byte, error) {
	if !o.Addr.IsValid() {
		return nil, fmt.Errorf("%w: no address", ErrInvalid)
	}
	addrType := "IP4"
	if o.Addr.Is6() {
		addrType = "IP6"
	}
	md := &psdp.MediaDescription{
		MediaName: psdp.MediaName{
			Media:  "audio",
			Port:   psdp.RangedPort{Value: o.Port},
			Protos: []string{"RTP", "AVP"},
		},
	}
	if o.Secure {
		md.MediaName.Protos = []string{"RTP", "SAVP"}
	}
	for _, c := range o.Codecs {
		md.MediaName.Formats = append(md.MediaName.Formats, strconv.Itoa(int(c.PT)))
	}
	for _, c := range o.Codecs {
		if c.Name != "" && c.ClockRate > 0 {
			v := fmt.Sprintf("%d %s/%d", c.PT, c.Name, c.ClockRate)
			if c.Channels > 0 {
				v += "/" + strconv.Itoa(c.Channels)
			}
			md.WithValueAttribute("rtpmap", v)
		}
		if c.Fmtp != "" {
			md.WithValueAttribute("fmtp", fmt.Sprintf("%d %s", c.PT, c.Fmtp))
		}
	}
	if o.PTime > 0 {
		md.WithValueAttribute("ptime", strconv.Itoa(o.PTime))
	}
	dir := o.Direction
	if dir == DirectionUnknown {
		dir = SendRecv
	}
	md.WithPropertyAttribute(dir.String())
	for i := range o.Crypto {
		md.WithValueAttribute("crypto", o.Crypto[i].String())
	}
	if o.RTCPPort > 0 {
		v := strconv.Itoa(o.RTCPPort)
		if a := o.RTCPAddr; a.IsValid() {
			t := "IP4"
			if a.Is6() {
				t = "IP6"
			}
			v += " IN " + t + " " + a.String()
		}
		md.WithValueAttribute("rtcp", v)
	}
	if o.RTCPMux {
		md.WithPropertyAttribute("rtcp-mux")
	}
	sd := &psdp.SessionDescription{
		Origin: psdp.Origin{
			Username: "baton", SessionID: o.SessionID, SessionVersion: o.SessionVersion,
			NetworkType: "IN", AddressType: addrType, UnicastAddress: o.Addr.String(),
		},
		SessionName: "baton",
		ConnectionInformation: &psdp.ConnectionInformation{
			NetworkType: "IN", AddressType: addrType, Address: &psdp.Address{Address: o.Addr.String()},
		},
		TimeDescriptions:  []psdp.TimeDescription{{}},
		MediaDescriptions: []*psdp.MediaDescription{md},
	}
	return sd.Marshal()
}
