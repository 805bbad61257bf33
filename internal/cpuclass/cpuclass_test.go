package cpuclass

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// The class is set in a child process (this test binary, run again), so
// the tests' own process keeps its class.
func TestSetIdleCoversEveryThread(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SCHED_IDLE is Linux's")
	}
	if os.Getenv("CPUCLASS_CHILD") == "1" {
		childCheck(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSetIdleCoversEveryThread$", "-test.v")
	cmd.Env = append(os.Environ(), "CPUCLASS_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestSetIdleCoversEveryThread") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func childCheck(t *testing.T) {
	if err := Set(Idle); err != nil {
		t.Fatal(err)
	}
	// Threads the runtime starts from now on must inherit the class.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // a goroutine of its own thread; never unlocked, so the thread ends with it
		}()
	}
	wg.Wait()
	tids, err := threads()
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		if p := policy(tid); p != schedIdle && p != -1 {
			t.Errorf("thread %d has policy %d, want SCHED_IDLE", tid, p)
		}
	}
}

func TestParse(t *testing.T) {
	for _, ok := range []string{"normal", "idle"} {
		if _, err := Parse(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	if _, err := Parse("realtime"); err == nil {
		t.Error("realtime accepted")
	}
}
