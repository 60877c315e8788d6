// Package plugins hosts out-of-process plugins over hashicorp/go-plugin
// with one versioned gRPC protocol per kind: transfer policies, presence
// backends and codecs (../shared/DESIGN.md §4, docs/plugins.md).
//
// Supervise starts and supervises one plugin process (checksum, automatic
// mTLS, start timeout, health checks with their own deadline, restart with
// backoff, parent-death signal); Check and List back `baton plugins`.
// LoadPolicy returns a plugin as a handoff.Policy with a per-call deadline
// and a fail mode. Plugin mains use package plugins/sdk.
package plugins
