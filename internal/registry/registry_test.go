package registry

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hokusai-ai/inference-queue/internal/redistest"
)

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

func TestParseApplyList(t *testing.T) {
	specs, err := Parse(strings.NewReader(`
models:
  - id: "21"
    name: Sales Lead Scoring Model
    source: file://models/sales-lead-scoring
  - id: "3"
    source: hf://hokusai/churn
    revision: v1.2
    pool: gpu
    max_batch_size: 10
`))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redistest.Client(t, srv)
	ctx := context.Background()
	if err := Apply(ctx, rdb, specs); err != nil {
		t.Fatal(err)
	}
	got, err := List(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	want := []Spec{
		{ID: "3", Name: "Model 3", Source: "hf://hokusai/churn", Revision: "v1.2", Pool: "gpu", MaxBatchSize: 10},
		{ID: "21", Name: "Sales Lead Scoring Model", Source: "file://models/sales-lead-scoring", Pool: "default", MaxBatchSize: 100},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
}

func TestParseRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"bad source":    "models: [{id: '1', source: 's3://x'}]",
		"bad hf repo":   "models: [{id: '1', source: 'hf://onlyname'}]",
		"bad id":        "models: [{id: 'a b', source: 'file://x'}]",
		"duplicate":     "models: [{id: '1', source: 'file://x'}, {id: '1', source: 'file://y'}]",
		"unknown field": "models: [{id: '1', source: 'file://x', colour: red}]",
		"huge batch":    "models: [{id: '1', source: 'file://x', max_batch_size: 100000}]",
	} {
		if _, err := Parse(strings.NewReader(doc)); err == nil {
			t.Errorf("%s: accepted, want an error", name)
		}
	}
}
