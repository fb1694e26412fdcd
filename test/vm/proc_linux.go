package vm

import "syscall"

// sysProcAttr makes the kernel kill qemu if the thread that started it
// dies, so that not even a crash of the test binary leaves a VM running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
