//go:build !linux

package access

import "errors"

// poller is Linux-only (poller_linux.go); elsewhere each session's
// goroutine parks in a read.
type poller struct{}

func newPoller() (*poller, error) {
	return nil, errors.New("access: poller: not available on this system")
}

func (p *poller) add(*pollConn) uint64        { return 0 }
func (p *poller) remove(uint64)               {}
func (p *poller) arm(int, uint64, bool) error { return errors.ErrUnsupported }
func (p *poller) Close() error                { return nil }
