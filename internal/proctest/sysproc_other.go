//go:build unix && !linux

package proctest

import "syscall"

// sysProcAttr: no Pdeathsig outside Linux; Stop and test cleanups end
// what we start.
func sysProcAttr(group bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: group}
}
