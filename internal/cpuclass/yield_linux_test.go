package cpuclass

import (
	"fmt"
	"math/bits"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"unsafe"
)

// cpuMask is a sched_{get,set}affinity CPU set of up to 1024 CPUs.
type cpuMask [16]uint64

// firstAllowedCPU is the lowest CPU the calling thread may run on.
func firstAllowedCPU() (int, error) {
	var m cpuMask
	if _, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_GETAFFINITY, 0, unsafe.Sizeof(m), uintptr(unsafe.Pointer(&m))); errno != 0 {
		return 0, fmt.Errorf("sched_getaffinity: %w", errno)
	}
	for i, w := range m {
		if w != 0 {
			return i*64 + bits.TrailingZeros64(w), nil
		}
	}
	return 0, fmt.Errorf("no CPU allowed")
}

// lockAndPin locks the calling goroutine to its thread for good and pins
// the thread to cpu.
func lockAndPin(cpu int) error {
	runtime.LockOSThread()
	var m cpuMask
	m[cpu/64] = 1 << (cpu % 64)
	if _, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, 0, unsafe.Sizeof(m), uintptr(unsafe.Pointer(&m))); errno != 0 {
		return fmt.Errorf("pin to CPU %d: %w", cpu, errno)
	}
	return nil
}

// involuntarySwitches is how often the calling thread has been switched out
// while still runnable.
func involuntarySwitches() (int, error) {
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "nonvoluntary_ctxt_switches:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("no nonvoluntary_ctxt_switches in /proc/thread-self/status")
}

// Yield hands the core to a task queued on it: beside a busy thread pinned
// to the same CPU, Yields switch this thread out, where 200 no-op calls
// finish in microseconds without a switch. Both threads are locked and
// pinned for good: they end with their goroutines instead of going back to
// the runtime pinned.
func TestYieldGivesTheCoreToAQueuedTask(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs two Go processors: one spins, one yields")
	}
	cpu, err := firstAllowedCPU()
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	spinning := make(chan error, 1)
	go func() {
		err := lockAndPin(cpu)
		spinning <- err
		for err == nil && !stop.Load() {
		}
	}()
	if err := <-spinning; err != nil {
		t.Fatal(err)
	}
	defer stop.Store(true)
	type result struct{ idle, yielded int }
	done := make(chan result, 1)
	failed := make(chan error, 1)
	go func() {
		if err := lockAndPin(cpu); err != nil {
			failed <- err
			return
		}
		count := func(f func()) (int, error) {
			before, err := involuntarySwitches()
			if err != nil {
				return 0, err
			}
			for range 200 {
				f()
			}
			after, err := involuntarySwitches()
			return after - before, err
		}
		// The kernel's choice depends on what else runs (go test runs
		// other packages beside this one): the best of five rounds counts.
		var best result
		for range 5 {
			idle, err1 := count(func() {})
			yielded, err2 := count(Yield)
			if err := cmpErr(err1, err2); err != nil {
				failed <- err
				return
			}
			if r := (result{idle, yielded}); r.yielded-2*r.idle > best.yielded-2*best.idle {
				best = r
			}
			if best.yielded >= 10 && best.yielded > 2*best.idle+5 {
				break
			}
		}
		done <- best
	}()
	select {
	case err := <-failed:
		t.Fatal(err)
	case r := <-done:
		// The kernel picks the other thread only while it is the fairer
		// choice (on 6.x 1 to 4 Yields in 10 here, 9 in 200 once under a
		// loaded CI run); the no-op loop is hardly ever switched out.
		if r.yielded < 10 || r.yielded <= 2*r.idle+5 {
			t.Fatalf("switched out %d times in 200 Yields and %d times in 200 no-ops beside a busy thread on CPU %d", r.yielded, r.idle, cpu)
		}
	}
}

func cmpErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
