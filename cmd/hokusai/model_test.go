package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const (
	demoModel   = "../../models/sales-lead-scoring"
	xgbFixtures = "../../worker/model/tree/testdata/xgb"
)

// modelCLI runs `hokusai model ARGS...` with stdin and returns stdout.
func modelCLI(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := runModel(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	return stdout.String(), err
}

// predictLines decodes the JSONL answer of `model predict`.
func predictLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
		lines = append(lines, v)
	}
	return lines
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestModelPredict(t *testing.T) {
	input := filepath.Join(t.TempDir(), "rows.jsonl")
	if err := os.WriteFile(input, []byte("[0.5, -1, null, 2, 0.1, 0]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	leadFields := []string{"prediction", "margin", "lead_score", "conversion_probability", "recommendation",
		"confidence", "factors", "factor_details"}
	tests := []struct {
		name   string
		args   []string
		stdin  string
		fields []string // keys of every output line
		check  func(t *testing.T, line map[string]any)
	}{
		{
			name:   "folder, named inputs and a feature array",
			args:   []string{"predict", demoModel},
			stdin:  `{"engagement_score": 85, "demo_requested": true, "title": "Chief Revenue Officer"}` + "\n\n" + `[120, 85, 10, 8, 2, true, false, 0, 1, 3]`,
			fields: leadFields,
			check: func(t *testing.T, line map[string]any) {
				if line["prediction"] != line["conversion_probability"] {
					t.Errorf("prediction %v, conversion_probability %v", line["prediction"], line["conversion_probability"])
				}
				if len(line["factors"].([]any)) != 3 {
					t.Errorf("factors %v, want 3", line["factors"])
				}
			},
		},
		{
			name:   "folder with explain",
			args:   []string{"predict", "--explain", demoModel},
			stdin:  `{"company_size": 40, "industry": "retail"}`,
			fields: append([]string{"contributions"}, leadFields...),
			check: func(t *testing.T, line map[string]any) {
				c := line["contributions"].([]any)
				var sum float64
				for _, v := range c {
					sum += v.(float64)
				}
				if len(c) != 11 || math.Abs(sum-line["margin"].(float64)) > 1e-4 {
					t.Errorf("%d contributions summing to %v, margin %v", len(c), sum, line["margin"])
				}
			},
		},
		{
			name:   "folder, read as the API reads a request: laxly, with warnings",
			args:   []string{"predict", demoModel},
			stdin:  `{"company_size": " 40 ", "industry": "Mining", "lead_owner": "ann"}`,
			fields: append([]string{"warnings"}, leadFields...),
			check: func(t *testing.T, line map[string]any) {
				var codes []string
				for _, w := range line["warnings"].([]any) {
					w := w.(map[string]any)
					codes = append(codes, w["field"].(string)+":"+w["code"].(string))
				}
				if diff := cmp.Diff([]string{"lead_owner:unknown_field", "industry:unknown_value"}, codes); diff != "" {
					t.Errorf("warnings (-want +got):\n%s", diff)
				}
			},
		},
		{
			name:   "bare multi-class file",
			args:   []string{"predict", filepath.Join(xgbFixtures, "multi_softprob.json"), "--explain"},
			stdin:  `[0.5, -1, null, 2, 0.1, 0]`,
			fields: []string{"prediction", "margin", "contributions"},
			check: func(t *testing.T, line map[string]any) {
				c := line["contributions"].([]any)
				if len(line["prediction"].([]any)) != 3 || len(line["margin"].([]any)) != 3 ||
					len(c) != 3 || len(c[0].([]any)) != 7 {
					t.Errorf("want 3 predictions, margins and lists of 7 contributions: %v", line)
				}
			},
		},
		{
			name:   "bare binary file from --input",
			args:   []string{"predict", filepath.Join(xgbFixtures, "binary_logistic.ubj"), "--input", input},
			fields: []string{"prediction", "margin"},
			check: func(t *testing.T, line map[string]any) {
				p, m := line["prediction"].(float64), line["margin"].(float64)
				if math.Abs(p-1/(1+math.Exp(-m))) > 1e-9 {
					t.Errorf("prediction %v is not sigmoid(margin %v)", p, m)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := modelCLI(t, tt.stdin, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range predictLines(t, out) {
				if diff := cmp.Diff(tt.fields, keys(line), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
					t.Errorf("fields (-want +got):\n%s", diff)
				}
				tt.check(t, line)
			}
		})
	}
}

func TestModelPredictErrors(t *testing.T) {
	pickle := filepath.Join(t.TempDir(), "model.pkl")
	if err := os.WriteFile(pickle, []byte("\x80\x04."), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  string
	}{
		{"bad JSON on line 2", []string{"predict", demoModel}, "[1,2,3,4,5,6,7,8,9,10]\n{oops", "line 2: not JSON"},
		{"wrong width", []string{"predict", demoModel}, "[1,2]", "line 1: got 2 feature values, the model takes 10"},
		{"invalid field", []string{"predict", demoModel}, "\n" + `{"company_size": "lots", "x": 1}`,
			`line 2: invalid input: company_size: expected a number, got "lots"`},
		{"object for a bare file", []string{"predict", filepath.Join(xgbFixtures, "binary_logistic.json")}, `{"a": 1}`,
			"line 1: a bare model file takes an array"},
		{"string value", []string{"predict", filepath.Join(xgbFixtures, "binary_logistic.json")}, `[1,"2",3,4,5,6]`,
			"line 1: feature value 1 is string"},
		{"pickle", []string{"predict", pickle}, "", "tools/sklearn_convert.py"},
		{"no model", []string{"predict"}, "", "needs a MODEL"},
		{"two models", []string{"predict", demoModel, demoModel}, "", "takes one MODEL"},
		{"unknown command", []string{"serve", demoModel}, "", `unknown model command "serve"`},
		{"bad rows", []string{"bench", demoModel, "--rows", "0"}, "", "--rows must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := modelCLI(t, tt.stdin, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestModelBench(t *testing.T) {
	out, err := modelCLI(t, "", "bench", filepath.Join(xgbFixtures, "binary_logistic.json"), "--rows", "64")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := regexp.MustCompile(`^rows_per_sec=[0-9.]+ single_row_ns=[0-9.]+ contrib_row_ns=[0-9.]+$`)
	if !last.MatchString(lines[len(lines)-1]) {
		t.Errorf("last line %q does not match %v", lines[len(lines)-1], last)
	}
}

func Example_modelPredict() {
	in := `{"engagement_score": 85, "demo_requested": true, "budget_confirmed": true, "title": "VP Sales", "decision_timeline": "Immediate"}`
	var out bytes.Buffer
	if err := runModel(context.Background(), []string{"predict", demoModel}, strings.NewReader(in), &out, os.Stderr); err != nil {
		panic(err)
	}
	var p struct {
		LeadScore      int      `json:"lead_score"`
		Recommendation string   `json:"recommendation"`
		Factors        []string `json:"factors"`
	}
	if err := json.Unmarshal(out.Bytes(), &p); err != nil {
		panic(err)
	}
	fmt.Printf("%s: %s\n", p.Recommendation, strings.Join(p.Factors, ", "))
	// Output: Hot: Engagement score (+), Budget confirmed (+), Demo requested (+)
}
