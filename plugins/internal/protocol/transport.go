package protocol

import "google.golang.org/grpc"

// The transport's sizes, for both ends of a plugin's connection. A codec
// batch of 1,000 calls is about 0.5 MB each way (16-bit PCM out, payloads
// back, and the reverse for decoding); with gRPC's defaults (64 KiB stream
// window, 32 KiB socket buffers, a new receive buffer per message) one
// round trip stalls on flow control, takes dozens of syscalls per side and
// leaves its buffers to the GC (docs/benchmarks.md §15).
const (
	transportWindow = 4 << 20
	transportBuffer = 256 << 10
)

// DialOptions are the host's gRPC options for a plugin connection.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(transportWindow),
		grpc.WithInitialConnWindowSize(transportWindow),
		grpc.WithWriteBufferSize(transportBuffer),
		grpc.WithReadBufferSize(transportBuffer),
		grpc.WithRecvBufferPool(grpc.NewSharedBufferPool()),
	}
}

// ServerOptions are the plugin's gRPC server options (Serve adds them to
// go-plugin's own).
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.InitialWindowSize(transportWindow),
		grpc.InitialConnWindowSize(transportWindow),
		grpc.WriteBufferSize(transportBuffer),
		grpc.ReadBufferSize(transportBuffer),
		grpc.RecvBufferPool(grpc.NewSharedBufferPool()),
	}
}
