package sdp

// Direction is the a= media direction attribute (RFC 3264 §5.1, §8.4).
type Direction int

// Directions. The zero value is DirectionUnknown; a description without a
// direction attribute is sendrecv (RFC 3264 §5.1).
const (
	DirectionUnknown Direction = iota
	SendRecv
	SendOnly
	RecvOnly
	Inactive
)

func (d Direction) String() string {
	switch d {
	case SendRecv:
		return "sendrecv"
	case SendOnly:
		return "sendonly"
	case RecvOnly:
		return "recvonly"
	case Inactive:
		return "inactive"
	default:
		return "unknown"
	}
}

func parseDirection(s string) Direction {
	switch s {
	case "sendrecv":
		return SendRecv
	case "sendonly":
		return SendOnly
	case "recvonly":
		return RecvOnly
	case "inactive":
		return Inactive
	}
	return DirectionUnknown
}

func (d Direction) sends() bool { return d == SendRecv || d == SendOnly }
func (d Direction) recvs() bool { return d == SendRecv || d == RecvOnly }

func fromFlags(send, recv bool) Direction {
	switch {
	case send && recv:
		return SendRecv
	case send:
		return SendOnly
	case recv:
		return RecvOnly
	default:
		return Inactive
	}
}

// AnswerDirection is the direction an answerer whose own wish is local puts
// in its answer to an offer with direction offered (RFC 3264 §6.1): it may
// send only if the offerer receives, and receive only if the offerer sends.
// A hold offer (sendonly) is therefore answered recvonly, inactive with
// inactive.
func AnswerDirection(offered, local Direction) Direction {
	if offered == DirectionUnknown {
		offered = SendRecv
	}
	if local == DirectionUnknown {
		local = SendRecv
	}
	return fromFlags(local.sends() && offered.recvs(), local.recvs() && offered.sends())
}
