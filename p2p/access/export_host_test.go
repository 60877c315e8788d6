package access

// For the external test package's BenchmarkHostMemoryPerEndpoint
// (bench_host_test.go), which runs TestMemoryServerHelper as its access
// server.
const MemGatewaySecret = memGatewaySecret
