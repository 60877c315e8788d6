//go:build unix

package endpoint

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// socketpair returns the two ends of a connected unix stream socket pair
// (socketpair(2)), each a net.Conn on the runtime's poller: kernel
// buffered both ways, deadlines supported.
func socketpair() (net.Conn, net.Conn, error) {
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	a, err := fileConn(fds[0])
	if err != nil {
		_ = syscall.Close(fds[1])
		return nil, nil, err
	}
	b, err := fileConn(fds[1])
	if err != nil {
		_ = a.Close()
		return nil, nil, err
	}
	return a, b, nil
}

// fileConn makes a net.Conn of fd (net.FileConn dups it; the original is
// closed here).
func fileConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "baton-local-signaling")
	c, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	return c, nil
}
