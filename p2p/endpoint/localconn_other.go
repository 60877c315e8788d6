//go:build !unix

package endpoint

import "net"

// socketpair is not available: dials take the TLS path.
func socketpair() (net.Conn, net.Conn, error) { return nil, nil, errNoSocketpair }
