// Package sdp maps SDP bodies (RFC 4566) to the typed offer/answer values the
// gateway's call legs use (RFC 3264), on pion/sdp. Only the first audio
// stream is mapped; other streams are ignored when parsing and not produced.
package sdp
