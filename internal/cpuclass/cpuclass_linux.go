package cpuclass

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// schedIdle is Linux's SCHED_IDLE policy (sched.h).
const schedIdle = 5

// setIdle sets SCHED_IDLE on every thread in /proc/self/task. The Go
// runtime may start a thread while the list is read, so it reads again
// until a pass finds every thread already idle.
func setIdle() error {
	for range 10 {
		tids, err := threads()
		if err != nil {
			return err
		}
		changed := false
		for _, tid := range tids {
			if policy(tid) == schedIdle {
				continue
			}
			var param struct{ priority int32 } // must be 0 for SCHED_IDLE
			_, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_SETSCHEDULER, uintptr(tid), schedIdle, uintptr(unsafe.Pointer(&param)))
			if errno != 0 && errno != syscall.ESRCH { // ESRCH: the thread ended meanwhile
				return fmt.Errorf("set SCHED_IDLE on thread %d: %w", tid, errno)
			}
			changed = true
		}
		if !changed {
			return nil
		}
	}
	return fmt.Errorf("threads kept starting while the CPU class was set")
}

func threads() ([]int, error) {
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("list threads: %w", err)
	}
	tids := make([]int, 0, len(entries))
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// policy returns thread tid's scheduling policy, or -1.
func policy(tid int) int {
	p, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_GETSCHEDULER, uintptr(tid), 0, 0)
	if errno != 0 {
		return -1
	}
	return int(p)
}

func yield() { _, _, _ = syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
