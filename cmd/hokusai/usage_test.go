package main

import (
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/redistest"
	meter "github.com/hokusai-ai/inference-queue/internal/usage"
)

// keys create, limits and revoke are audited with the actor --actor names,
// or $HOKUSAI_ACTOR; keys audit shows them by tenant, never a key.
func TestKeysAudit(t *testing.T) {
	redistest.Client(t, srv) // a flushed database
	out, err := cli(t, "keys", "create", "--tenant", "acme", "--actor", "alice", "--limit", "5000/h")
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(out)
	id := apikey.Hash(key)[:12]
	if _, err := cli(t, "keys", "limits", id, "--limit", "unlimited", "--actor=bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli(t, "keys", "create", "--tenant", "beta", "--actor", "alice"); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"REDIS_URL": srv.URL, "HOKUSAI_ACTOR": "carol"}
	if err := run(context.Background(), []string{"hokusai", "keys", "revoke", id}, func(k string) string { return env[k] },
		strings.NewReader(""), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	out, err = cli(t, "keys", "audit", "--tenant", "acme", "--since", time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{
		`^TIME\s+ACTION\s+SETTING\s+TENANT\s+KEY ID\s+VALUE\s+PREVIOUS\s+ACTOR$`,
		`^\S+Z\s+create\s+requests\s+acme\s+` + id + `\s+5000/h\s+-\s+alice$`,
		`^\S+Z\s+limit\s+requests\s+acme\s+` + id + `\s+unlimited\s+5000/h\s+bob$`,
		`^\S+Z\s+revoke\s+-\s+acme\s+` + id + `\s+-\s+unlimited\s+carol$`,
	}
	if len(lines) != len(want) {
		t.Fatalf("keys audit --tenant acme:\n%s", out)
	}
	for i, re := range want {
		if !regexp.MustCompile(re).MatchString(lines[i]) {
			t.Errorf("line %d %q does not match %s", i, lines[i], re)
		}
	}
	if strings.Contains(out, key) || strings.Contains(out, "beta") {
		t.Errorf("keys audit shows a key or another tenant:\n%s", out)
	}
	if _, err := cli(t, "keys", "revoke", "--actor"); err == nil {
		t.Error("--actor without a name accepted")
	}
}

// hokusai usage prints exactly what was counted, per tenant or all, as a
// table or CSV, and refuses a range it would not read.
func TestUsageCommand(t *testing.T) {
	rdb := redistest.Client(t, srv)
	m := meter.NewMeter(rdb, meter.Config{})
	m.Add("acme", "k1", "21", meter.Counts{Requests: 3, Errors: 1, Rows: 102, Compute: 2500 * time.Microsecond})
	m.Add("acme", "k1", "", meter.Counts{Requests: 2})
	m.Add("beta", "k2", "21", meter.Counts{Requests: 1, BatchRows: 8, FailedRows: 2})
	if err := m.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	day := time.Now().UTC().Format(time.DateOnly)
	out, err := cli(t, "usage", "--format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	want := "day,tenant,key_id,model_id,requests,errors,rows,batch_rows,failed_rows,compute_seconds\n" +
		day + ",acme,k1,,2,0,0,0,0,0.000000\n" +
		day + ",acme,k1,21,3,1,102,0,0,0.002500\n" +
		day + ",beta,k2,21,1,0,0,8,2,0.000000\n"
	if out != want {
		t.Errorf("usage --format csv:\n%s\nwant:\n%s", out, want)
	}
	out, err = cli(t, "usage", "--tenant", "beta", "--since", day, "--until", day)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(day+`\s+beta\s+k2\s+21\s+1\s+0\s+0\s+8\s+2\s+0\.000000`).MatchString(out) || strings.Contains(out, "acme") {
		t.Errorf("usage --tenant beta:\n%s", out)
	}
	for _, bad := range [][]string{{"--since", "2020-01-01", "--until", "2021-06-01"}, {"--since", "yesterday"}, {"--format", "xml"}} {
		if _, err := cli(t, append([]string{"usage"}, bad...)...); err == nil {
			t.Errorf("usage %v accepted", bad)
		}
	}
}
