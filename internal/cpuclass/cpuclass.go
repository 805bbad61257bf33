package cpuclass

import "fmt"

// Classes a process can ask for.
const (
	Normal = "normal"
	Idle   = "idle"
)

// Parse checks a class name.
func Parse(s string) (string, error) {
	switch s {
	case Normal, Idle:
		return s, nil
	}
	return "", fmt.Errorf("CPU class %q is not normal or idle", s)
}

// Set moves every thread of the process to class; threads started later
// inherit it from the thread that starts them. Normal changes nothing: a
// process cannot raise its class back without privilege.
func Set(class string) error {
	if class != Idle {
		return nil
	}
	return setIdle()
}

// Yield offers the calling thread's core to any task the kernel has queued
// on it, and returns at once when there is none (about a microsecond).
// Idle-class work calls it every few hundred microseconds: a core busy with
// such work is handed to a waking sync predict at the next Yield, instead of
// whenever the kernel's preemption of the busy core gets through (up to a
// 4 ms tick on a virtual machine; see docs/operations.md).
func Yield() { yield() }
