//go:build !linux

package vaulttest

import "syscall"

// sysProcAttr returns nil: only Linux can kill the server when the test
// binary dies, so elsewhere a test binary that dies without running Main
// leaves its server running.
func sysProcAttr() *syscall.SysProcAttr { return nil }
