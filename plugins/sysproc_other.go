//go:build !linux

package plugins

import "os/exec"

// setParentDeath has no equivalent here; the SDK's parent-pid watchdog
// ends the plugin when the host goes away.
func setParentDeath(*exec.Cmd) {}
