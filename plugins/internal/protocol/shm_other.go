//go:build !linux

package protocol

import "os"

// NewSharedMemory is not supported here: codec batches go through gRPC.
func NewSharedMemory(string, int) (*os.File, []byte, error) { return nil, nil, ErrNoSharedMemory }

// OpenSharedMemory is not supported here.
func OpenSharedMemory() ([]byte, error) { return nil, ErrNoSharedMemory }

// UnmapSharedMemory is not supported here.
func UnmapSharedMemory([]byte) error { return nil }
