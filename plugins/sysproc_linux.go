package plugins

import (
	"os/exec"
	"syscall"
)

// setParentDeath asks the kernel to SIGKILL the plugin when the host dies
// (prctl PR_SET_PDEATHSIG, set between fork and exec). Linux ties it to
// the thread that forked, not the process; Go only retires threads that a
// goroutine locked and abandoned, which the host never does around Start,
// and the SDK's parent-pid watchdog covers any remaining case.
func setParentDeath(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
