package vaulttest

import "syscall"

// sysProcAttr makes the kernel kill the server when the test binary dies
// without running Main (a panic, a timeout, a kill), so that no dev server
// outlives its tests.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
