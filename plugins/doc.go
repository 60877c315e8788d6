// Package plugins will host out-of-process plugins over
// hashicorp/go-plugin with versioned gRPC protocols: codecs, presence
// backends and transfer policies (../shared/DESIGN.md §4).
//
// Not implemented yet. The extension points they will plug into already
// exist as interfaces: codecs.Codec with codecs.Registry, and
// presence.Store in p2p/presence.
package plugins
