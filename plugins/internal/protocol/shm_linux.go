package protocol

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// NewSharedMemory creates a shared memory region of size bytes for a
// codec plugin: the memfd to pass it (SharedMemoryFD) and the host's
// mapping. The caller closes the file once the plugin has started, and
// unmaps with UnmapSharedMemory once nothing uses the mapping.
func NewSharedMemory(name string, size int) (*os.File, []byte, error) {
	if size <= 0 || size > MaxSharedMemory {
		return nil, nil, fmt.Errorf("shared memory: size %d outside 1..%d", size, MaxSharedMemory)
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("shared memory: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	if err := f.Truncate(int64(size)); err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("shared memory: %w", err)
	}
	b, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("shared memory: mmap: %w", err)
	}
	return f, b, nil
}

// OpenSharedMemory maps the region the host passed this plugin process
// (EnvSharedMemoryFD); ErrNoSharedMemory when there is none. The fd is
// closed once mapped.
func OpenSharedMemory() ([]byte, error) {
	v := os.Getenv(EnvSharedMemoryFD)
	if v == "" {
		return nil, ErrNoSharedMemory
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("shared memory: %s=%q: want a descriptor number >= 3", EnvSharedMemoryFD, v)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("shared memory: fd %d: %w", fd, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size <= 0 || st.Size > MaxSharedMemory {
		return nil, fmt.Errorf("shared memory: fd %d: not a region (mode %o, %d bytes)", fd, st.Mode, st.Size)
	}
	b, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shared memory: mmap fd %d: %w", fd, err)
	}
	return b, nil
}

// UnmapSharedMemory releases a mapping of NewSharedMemory or
// OpenSharedMemory. Nothing may use it afterwards.
func UnmapSharedMemory(b []byte) error { return unix.Munmap(b) }
