package proctest

import "syscall"

// sysProcAttr: Pdeathsig, so that nothing we start outlives us, even when
// we die without cleaning up.
func sysProcAttr(group bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: group, Pdeathsig: syscall.SIGKILL}
}
