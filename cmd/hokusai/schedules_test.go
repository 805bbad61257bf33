package main

import (
	"strings"
	"testing"

	"github.com/hokusai-ai/inference-queue/internal/redistest"
)

// The schedules commands against `hokusai dev`: create prints the new
// schedule's id, list shows it, a bad spec is refused naming the field,
// and delete removes it (a second delete says it is gone).
func TestSchedulesCommands(t *testing.T) {
	redistest.Client(t, srv)
	cli := devCLI(t, map[string]string{"HOKUSAI_S3_ALLOW": "s3://leads"})
	create := func(cron string) (string, string, error) {
		return cli("schedules", "create", "--model", "21", "--cron", cron, "--tz", "Europe/Berlin",
			"--input", "s3://leads/exports/{{date}}.csv", "--output", "s3://leads/scores/{{date}}/")
	}
	id, msg, err := create("30 2 * * *")
	id = strings.TrimSpace(id)
	if err != nil || id == "" || !strings.Contains(msg, "first run") {
		t.Fatalf("create: %q %q %v", id, msg, err)
	}
	if _, _, err := create("30 25 * * *"); err == nil || !strings.Contains(err.Error(), "cron:") || !strings.Contains(err.Error(), "invalid_input") {
		t.Fatalf("a bad cron spec: %v", err)
	}
	list, _, err := cli("schedules", "list")
	if err != nil || !strings.Contains(list, id) || !strings.Contains(list, "30 2 * * *") || !strings.Contains(list, "Europe/Berlin") {
		t.Fatalf("list: %v\n%s", err, list)
	}
	if _, _, err := cli("schedules", "delete", id); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, _, err := cli("schedules", "delete", id); err == nil || !strings.Contains(err.Error(), "schedule_not_found") {
		t.Fatalf("a second delete: %v", err)
	}
	if list, _, _ := cli("schedules", "list"); strings.Contains(list, id) {
		t.Fatalf("list after delete:\n%s", list)
	}
}
