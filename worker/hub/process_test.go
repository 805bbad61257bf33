package hub

import (
	"context"
	"os"
	"os/exec"
	"testing"
)

// TestTwoProcessesDownloadOnce runs two worker processes (this test binary,
// re-executed) against one cache: the blob locks must keep each file to one
// download.
func TestTwoProcessesDownloadOnce(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	cache := t.TempDir()
	var cmds []*exec.Cmd
	for range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcessSnapshot$", "-test.count=1")
		cmd.Env = append(os.Environ(), "HUB_HELPER_ENDPOINT="+hub.URL(), "HUB_HELPER_CACHE="+cache)
		cmds = append(cmds, cmd)
	}
	outs := make([][]byte, len(cmds))
	errs := make([]error, len(cmds))
	done := make(chan int)
	for i, cmd := range cmds {
		go func() { outs[i], errs[i] = cmd.CombinedOutput(); done <- i }()
	}
	for range cmds {
		<-done
	}
	for i := range cmds {
		if errs[i] != nil {
			t.Fatalf("process %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	for name := range publicRepo.Files {
		if n := hub.Downloads("acme/public", name); n != 1 {
			t.Errorf("%s downloaded %d times by two processes, want 1", name, n)
		}
	}
}

// TestHelperProcessSnapshot is the child of TestTwoProcessesDownloadOnce.
func TestHelperProcessSnapshot(t *testing.T) {
	endpoint := os.Getenv("HUB_HELPER_ENDPOINT")
	if endpoint == "" {
		t.Skip("runs only as a child of TestTwoProcessesDownloadOnce")
	}
	c := newTestClient(t, endpoint, os.Getenv("HUB_HELPER_CACHE"), "")
	if _, _, err := c.Snapshot(context.Background(), "acme/public", "main", nil); err != nil {
		t.Fatal(err)
	}
}
