package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The API binary must not link worker code: no HF client, no token
// providers, no models, no S3 client. This is the first outage's guard at build level.
func TestAPIDoesNotLinkWorker(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	const worker = "github.com/hokusai-ai/inference-queue/worker"
	n := 0
	for _, pkg := range strings.Fields(string(out)) {
		n++
		if pkg == worker || strings.HasPrefix(pkg, worker+"/") {
			t.Errorf("hokusai-api depends on %s", pkg)
		}
		if strings.Contains(pkg, "aws-sdk-go-v2/service/secretsmanager") {
			t.Errorf("hokusai-api links the Secrets Manager client %s", pkg)
		}
		if strings.Contains(pkg, "aws-sdk-go-v2/service/s3") {
			t.Errorf("hokusai-api links the S3 client %s: workers read and write S3", pkg)
		}
	}
	if n < 50 {
		t.Fatalf("go list -deps listed only %d packages; the check would prove nothing", n)
	}
}
