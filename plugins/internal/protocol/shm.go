package protocol

import (
	"errors"
	"fmt"

	"github.com/baton-voice/baton/plugins/internal/pb/codecv1"
)

// The codec stream's shared memory data plane (codec.proto, Region): the
// host creates a memfd, maps it, and passes it to the codec plugin
// process at start as file descriptor SharedMemoryFD, named in the
// environment variable EnvSharedMemoryFD. A plugin that maps it says so in
// its ListResponse, and from then on a Batch's packed frames (a thousand
// calls' PCM: about half a megabyte each way) are written into the region
// and only a Region crosses gRPC, TLS and the socket. The memfd is the
// host's and the plugin's alone (it has no name in any file system), so
// the region needs none of the transport's TLS.

// EnvSharedMemoryFD is the environment variable that gives a codec
// plugin the shared memory region's file descriptor; empty or unset, there
// is none.
const EnvSharedMemoryFD = "BATON_CODEC_SHM_FD"

// SharedMemoryFD is the descriptor the host passes the region as: its
// first extra file (after stdin, stdout and stderr).
const SharedMemoryFD = 3

// MaxSharedMemory bounds the region a plugin maps.
const MaxSharedMemory = 1 << 30

// ErrNoSharedMemory means shared memory is not available here (not
// offered, or not supported on this platform).
var ErrNoSharedMemory = errors.New("no shared memory region")

// ErrBadRegion means a Region lies outside the shared memory mapping (or
// a batch names one where there is no mapping).
var ErrBadRegion = errors.New("bad shared memory region")

// RegionBytes returns the bytes of shm that r names, checking the bounds.
func RegionBytes(shm []byte, r *codecv1.Region) ([]byte, error) {
	if shm == nil {
		return nil, fmt.Errorf("%w: a region (%d+%d) but no shared memory", ErrBadRegion, r.GetOffset(), r.GetLength())
	}
	off, n := r.GetOffset(), r.GetLength()
	if off > uint64(len(shm)) || n > uint64(len(shm))-off {
		return nil, fmt.Errorf("%w: %d+%d outside the %d-byte mapping", ErrBadRegion, off, n, len(shm))
	}
	return shm[off : off+n : off+n], nil
}

// Aliases reports whether b starts at the first byte of base, so a
// buffer appended to from base[:0] was not moved to the heap.
func Aliases(b, base []byte) bool {
	return cap(b) > 0 && cap(base) > 0 && &b[:1][0] == &base[:1][0]
}
