package access

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// poller watches parked connections (pollConn) with an epoll instance of
// its own. Each connection is armed one-shot, level-triggered: it fires
// once when readable or hung up, and stays silent until parked again. The
// epoll descriptor is itself registered with Go's network poller (an epoll
// set can be watched like a socket), so waiting costs no thread.
type poller struct {
	ep   *os.File
	rc   syscall.RawConn
	done chan struct{}

	mu    sync.Mutex
	next  uint64
	conns map[uint64]*pollConn
}

// pollEvents: readable, the peer closed or half-closed, error or hang-up
// (the last two are always reported), and disarm after one report.
const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// newPoller creates the epoll instance and starts the goroutine that wakes
// connections; Close stops it.
func newPoller() (*poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("access: poller: epoll_create1: %w", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("access: poller: %w", err)
	}
	ep := os.NewFile(uintptr(fd), "access-poller")
	rc, err := ep.SyscallConn()
	if err != nil {
		_ = ep.Close()
		return nil, fmt.Errorf("access: poller: %w", err)
	}
	p := &poller{ep: ep, rc: rc, done: make(chan struct{}), conns: make(map[uint64]*pollConn)}
	go p.run()
	return p, nil
}

// run waits for the epoll set to become readable and wakes every
// connection it reports, until Close.
func (p *poller) run() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 128)
	var woken []*pollConn
	for {
		err := p.rc.Read(func(fd uintptr) bool {
			for {
				n, err := syscall.EpollWait(int(fd), events, 0)
				if errors.Is(err, syscall.EINTR) {
					continue
				}
				if err != nil || n <= 0 {
					return false // nothing ready: wait for the set to be readable
				}
				p.mu.Lock()
				for _, ev := range events[:n] {
					if c := p.conns[uint64(uint32(ev.Fd))|uint64(uint32(ev.Pad))<<32]; c != nil {
						woken = append(woken, c)
					}
				}
				p.mu.Unlock()
				for i, c := range woken {
					c.wake()
					woken[i] = nil
				}
				woken = woken[:0]
			}
		})
		if err != nil {
			return // closed
		}
	}
}

// add registers c and returns its token (never 0).
func (p *poller) add(c *pollConn) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	p.conns[p.next] = c
	return p.next
}

func (p *poller) remove(token uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, token)
}

// arm adds fd to the set (or re-arms it) to report once when readable.
func (p *poller) arm(fd int, token uint64, added bool) error {
	ev := syscall.EpollEvent{Events: pollEvents, Fd: int32(uint32(token)), Pad: int32(uint32(token >> 32))}
	var err error
	cerr := p.rc.Control(func(epfd uintptr) {
		op := syscall.EPOLL_CTL_MOD
		if !added {
			op = syscall.EPOLL_CTL_ADD
		}
		err = syscall.EpollCtl(int(epfd), op, fd, &ev)
		if errors.Is(err, syscall.EEXIST) {
			err = syscall.EpollCtl(int(epfd), syscall.EPOLL_CTL_MOD, fd, &ev)
		} else if errors.Is(err, syscall.ENOENT) {
			err = syscall.EpollCtl(int(epfd), syscall.EPOLL_CTL_ADD, fd, &ev)
		}
	})
	if cerr != nil {
		return cerr
	}
	return err
}

// Close stops the poller and waits for its goroutine. Connections still
// registered are no longer watched: the server closes them all first.
func (p *poller) Close() error {
	err := p.ep.Close()
	<-p.done
	return err
}
