package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hokusai-ai/inference-queue/internal/redistest"
	"github.com/hokusai-ai/inference-queue/internal/s3url"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// s3 allow and revoke edit the tenant's own list, which the allow-list
// check reads; entries are checked before they are stored.
func TestS3Commands(t *testing.T) {
	rdb := redistest.Client(t, srv)
	for _, e := range []string{"s3://leads/exports", "s3://scores"} {
		if _, err := cli(t, "s3", "allow", "--tenant", "acme", e); err != nil {
			t.Fatal(err)
		}
	}
	out, err := cli(t, "s3", "list", "--tenant", "acme")
	if diff := cmp.Diff("s3://leads/exports/\ns3://scores/\n", out); err != nil || diff != "" {
		t.Fatalf("s3 list (-want +got): %v\n%s", err, diff)
	}
	u, _ := s3url.Parse("s3://leads/exports/a.csv")
	if ok, err := s3url.AllowList(nil).Check(t.Context(), rdb, "acme", u); err != nil || !ok {
		t.Errorf("the tenant's entry does not allow %s: %v", u, err)
	}
	if ok, _ := s3url.AllowList(nil).Check(t.Context(), rdb, "globex", u); ok {
		t.Errorf("another tenant is allowed %s", u)
	}
	if _, err := cli(t, "s3", "revoke", "--tenant", "acme", "s3://scores"); err != nil {
		t.Fatal(err)
	}
	if got := rdb.SMembers(t.Context(), jobs.S3AllowKey("acme")).Val(); len(got) != 1 {
		t.Errorf("after revoke: %v", got)
	}
	for _, bad := range [][]string{{"s3", "allow", "s3://leads"}, {"s3", "allow", "--tenant", "acme", "https://x/y"},
		{"s3", "allow", "--tenant", "acme", "s3://leads/../x"}, {"s3", "allow", "--tenant", "acme"}} {
		if _, err := cli(t, bad...); err == nil {
			t.Errorf("%v succeeded", bad)
		}
	}
}
