package model

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker/model/tree"
)

const (
	demoDir  = "../../models/sales-lead-scoring"
	xgbFixes = "tree/testdata/xgb"
)

func loadDemo(t testing.TB) *Model {
	t.Helper()
	m, err := Load(demoDir)
	if err != nil {
		t.Fatalf("Load(%s): %v", demoDir, err)
	}
	return m
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestDemoGolden checks the demo model against xgboost's own outputs,
// computed by tools/train_demo_model.py from the same named inputs.
func TestDemoGolden(t *testing.T) {
	m := loadDemo(t)
	var golden struct {
		Inputs        []map[string]any
		Probabilities []float64
		Contributions [][]float64
	}
	readJSON(t, "testdata/sales_lead_golden.json", &golden)
	rows := make([]jobs.Row, len(golden.Inputs))
	for i, in := range golden.Inputs {
		row, errs, _ := m.Schema().Parse(in, strictNow)
		if errs != nil {
			t.Fatalf("input %d: %v", i, errs)
		}
		rows[i] = row
	}
	preds, err := m.Predict(rows)
	if err != nil {
		t.Fatal(err)
	}
	nf := m.Engine().NumFeatures()
	x := make([]float32, nf)
	contrib := make([]float64, nf+1)
	for i, p := range preds {
		want := golden.Probabilities[i]
		if math.Abs(p.ConversionProbability-want) > 1e-5 {
			t.Errorf("row %d: probability %v, xgboost %v", i, p.ConversionProbability, want)
		}
		if p.LeadScore != int(math.Floor(100*p.ConversionProbability)) {
			t.Errorf("row %d: lead_score %d for probability %v", i, p.LeadScore, p.ConversionProbability)
		}
		if err := m.Encode(rows[i], x); err != nil {
			t.Fatal(err)
		}
		m.Engine().Contributions(x, contrib)
		if diff := cmp.Diff(golden.Contributions[i], contrib, cmpopts.EquateApprox(0, 1e-4)); diff != "" {
			t.Errorf("row %d: contributions (-xgboost +engine):\n%s", i, diff)
		}
		if diff := cmp.Diff(topFeatures(m, golden.Contributions[i][:nf], 3), p.FactorDetails,
			cmpopts.IgnoreFields(Factor{}, "Contribution")); diff != "" {
			t.Errorf("row %d: factors (-from xgboost's contributions +got):\n%s", i, diff)
		}
	}
}

// topFeatures ranks features by |contribution| the slow way.
func topFeatures(m *Model, phi []float64, k int) []Factor {
	idx := make([]int, 0, len(phi))
	for i, c := range phi {
		if c != 0 {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return math.Abs(phi[idx[a]]) > math.Abs(phi[idx[b]]) })
	var out []Factor
	for _, i := range idx[:min(k, len(idx))] {
		out = append(out, Factor{Feature: m.features[i].name, Contribution: phi[i]})
	}
	return out
}

func TestDemoPrediction(t *testing.T) {
	m := loadDemo(t)
	tests := []struct {
		name           string
		in             map[string]any
		recommendation string
		factor         string // must be among the factors
	}{
		{
			name: "hot lead",
			in: map[string]any{"company_size": 300.0, "engagement_score": 90.0, "website_visits": 14.0,
				"email_opens": 12.0, "content_downloads": 4.0, "demo_requested": true, "budget_confirmed": true,
				"industry": "technology", "decision_timeline": "Immediate", "title": "VP of Sales"},
			recommendation: "Hot",
			factor:         "Demo requested (+)",
		},
		{
			name: "cold lead",
			in: map[string]any{"company_size": 5.0, "engagement_score": 5.0, "website_visits": 0.0,
				"demo_requested": false, "decision_timeline": "12+ months", "title": "Intern"},
			recommendation: "Cold",
			factor:         "Decision timeline (-)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			row, errs, _ := m.Schema().Parse(tt.in, strictNow)
			if errs != nil {
				t.Fatal(errs)
			}
			preds, err := m.Predict([]jobs.Row{row})
			if err != nil {
				t.Fatal(err)
			}
			p := preds[0]
			if p.Recommendation != tt.recommendation {
				t.Errorf("recommendation %q (score %d), want %q", p.Recommendation, p.LeadScore, tt.recommendation)
			}
			if len(p.Factors) != 3 || !strings.Contains(strings.Join(p.Factors, "|"), tt.factor) {
				t.Errorf("factors %q, want 3 including %q", p.Factors, tt.factor)
			}
			if p.Confidence < 0 || p.Confidence > 1 {
				t.Errorf("confidence %v outside [0, 1]", p.Confidence)
			}
		})
	}
}

// strictNow reads inputs as the API does with "strict": true.
var strictNow = jobs.Mode{Strict: true, AsOf: time.Now()}

func TestValidateErrors(t *testing.T) {
	m := loadDemo(t)
	_, errs, _ := m.Schema().Parse(map[string]any{
		"industry": "Aerospace", "demo_requested": "maybe", "engagement_score": 120.0, "colour": "red",
	}, strictNow)
	var codes []string
	for _, e := range errs {
		codes = append(codes, e.Field+":"+e.Code)
	}
	want := []string{"colour:unknown_field", "demo_requested:invalid_type", "engagement_score:out_of_range", "industry:invalid_value"}
	if diff := cmp.Diff(want, codes); diff != "" {
		t.Errorf("field errors (-want +got):\n%s", diff)
	}
}

func TestTextRules(t *testing.T) {
	m := loadDemo(t)
	title := &m.features[m.Schema().Index("title")]
	tests := []struct {
		text string
		want float32
	}{
		{"VP of Sales", 3},
		{"sales/vp", 3},
		{"Responsable Développement, HEAD", 2},
		{"Vice-President, Marketing", 3},
		{"chief executive officer", 3},
		{"Director of Engineering", 2},
		{"Head of IT", 2},
		{"Senior Analyst", 1},
		{"Software Engineer", 0},
		{"", 0},
		{"svpx", 0},              // words, not substrings
		{"Directorate clerk", 0}, // "director" is not a word here
	}
	for _, tt := range tests {
		if got := title.textCode(tt.text); got != tt.want {
			t.Errorf("textCode(%q) = %v, want %v", tt.text, got, tt.want)
		}
	}
}

func TestRecommend(t *testing.T) {
	h := head{scale: 100, hot: 70, warm: 40, hotLabel: "Hot", warmLabel: "Warm", cold: "Cold"}
	tests := []struct {
		p          float64
		label      string
		confidence float64
	}{
		{0, "Cold", 1},
		{0.2, "Cold", 0.5},
		{0.3999, "Cold", 0.00025},
		{0.4, "Warm", 0},
		{0.55, "Warm", 1},
		{0.6999, "Warm", 0.000667},
		{0.7, "Hot", 0},
		{0.85, "Hot", 0.5},
		{1, "Hot", 1},
	}
	for _, tt := range tests {
		s := 100 * tt.p
		label, c := h.recommend(int(math.Floor(s)), s)
		if label != tt.label || math.Abs(c-tt.confidence) > 1e-3 {
			t.Errorf("p=%v: %s %.6f, want %s %.6f", tt.p, label, c, tt.label, tt.confidence)
		}
	}
}

// writeFolder makes a model folder from a hokusai config object and a copy
// of the model file src (if any).
func writeFolder(t *testing.T, hokusai map[string]any, src string) string {
	t.Helper()
	dir := t.TempDir()
	b, err := json.Marshal(map[string]any{"hokusai": hokusai})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if src != "" {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(src)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// numberFeatures declares n number inputs f0..f(n-1).
func numberFeatures(n int) []any {
	fs := make([]any, n)
	for i := range fs {
		fs[i] = map[string]any{"name": "f" + string(rune('0'+i)), "type": "number"}
	}
	return fs
}

// demoConfig returns the demo's hokusai object with edit applied.
func demoConfig(t *testing.T, edit func(h map[string]any)) map[string]any {
	t.Helper()
	var c struct{ Hokusai map[string]any }
	readJSON(t, filepath.Join(demoDir, ConfigFile), &c)
	edit(c.Hokusai)
	return c.Hokusai
}

func feature(h map[string]any, i int) map[string]any {
	return h["features"].([]any)[i].(map[string]any)
}

func TestLoadRefuses(t *testing.T) {
	demoModel := filepath.Join(demoDir, "model.json")
	tests := []struct {
		name  string
		edit  func(h map[string]any)
		model string
		want  string
	}{
		{"feature count", func(h map[string]any) { h["features"] = h["features"].([]any)[:9] }, demoModel,
			"config.json declares 9 features but model.json expects 10"},
		{"unknown type", func(h map[string]any) { feature(h, 0)["type"] = "integer" }, demoModel,
			`feature 0 ("company_size"): type "integer" is unknown`},
		{"duplicate name", func(h map[string]any) { feature(h, 1)["name"] = "company_size" }, demoModel,
			`field "company_size" is declared twice`},
		{"unknown task", func(h map[string]any) { h["task"] = "ranking" }, demoModel, `task "ranking" is unknown`},
		{"typo", func(h map[string]any) { h["treshold"] = 1 }, demoModel, `unknown field "treshold"`},
		{"unknown format", func(h map[string]any) { h["format"] = "onnx" }, demoModel, `format "onnx" is unknown`},
		{"pickle model file", func(h map[string]any) { h["model_file"] = "model.pkl" }, demoModel, Converter},
		{"escaping path", func(h map[string]any) { h["model_file"] = "../model.json" }, demoModel, "relative path inside"},
		{"missing file", func(h map[string]any) { h["model_file"] = "other.json" }, demoModel, "other.json"},
		{"thresholds", func(h map[string]any) {
			h["head"].(map[string]any)["thresholds"] = map[string]any{"hot": 30, "warm": 40}
		}, demoModel, "0 < warm < hot"},
		{"classes on lead scoring", func(h map[string]any) {
			h["head"].(map[string]any)["classes"] = []any{"no", "yes"}
		}, demoModel, "head.classes applies only to classification"},
		{"case duplicates", func(h map[string]any) {
			feature(h, 7)["values"].(map[string]any)["technology"] = 9
		}, demoModel, "differ only in case"},
		{"bad default", func(h map[string]any) { feature(h, 7)["default"] = "Mining" }, demoModel,
			`default of field "industry"`},
		{"text without rules", func(h map[string]any) { delete(feature(h, 9), "rules") }, demoModel,
			"needs keyword rules"},
		{"min on boolean", func(h map[string]any) { feature(h, 5)["min"] = 0 }, demoModel,
			"min, max and integer apply only to number features"},
		{"integer on boolean", func(h map[string]any) { feature(h, 5)["integer"] = true }, demoModel,
			"min, max and integer apply only to number features"},
		{"timeline bucket without a bound", func(h map[string]any) {
			delete(feature(h, 8)["buckets"].([]any)[1].(map[string]any), "max_months")
		}, demoModel, `bucket 1 ("1-3 months") needs max_months`},
		{"timeline bounds falling", func(h map[string]any) {
			feature(h, 8)["buckets"].([]any)[2].(map[string]any)["max_months"] = 2
		}, demoModel, `bucket 2 ("3-6 months") needs max_months of 0 or more, above the bucket before it`},
		{"last timeline bucket bounded", func(h map[string]any) {
			feature(h, 8)["buckets"].([]any)[4].(map[string]any)["max_months"] = 24
		}, demoModel, "is the last and takes every timeline further out"},
		{"timeline buckets twice", func(h map[string]any) {
			feature(h, 8)["buckets"].([]any)[1].(map[string]any)["value"] = "IMMEDIATE"
		}, demoModel, "is named twice"},
		{"buckets on a category", func(h map[string]any) { feature(h, 7)["buckets"] = []any{} }, demoModel,
			"buckets apply only to timeline features"},
		{"bad model file", func(h map[string]any) { h["model_file"] = "config.json"; h["format"] = "lightgbm-text" },
			demoModel, "config.json as lightgbm-text"},
		{"margin objective for lead scoring", func(h map[string]any) {
			h["features"], h["model_file"] = numberFeatures(6), "binary_logitraw.json"
		}, filepath.Join(xgbFixes, "binary_logitraw.json"), "must predict a probability, but binary_logitraw.json has objective binary:logitraw"},
		{"two outputs for regression", func(h map[string]any) {
			h["task"], h["features"], h["model_file"], h["head"] = "regression", numberFeatures(6), "multi_softprob.json", map[string]any{}
		}, filepath.Join(xgbFixes, "multi_softprob.json"), "a regression model needs one output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFolder(t, demoConfig(t, tt.edit), tt.model)
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestLoadRefusesPickleFolder(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "model.pkl"), []byte("\x80\x04K\x01."), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	if !errors.Is(err, tree.ErrPickle) || !strings.Contains(err.Error(), Converter) {
		t.Fatalf("Load error = %v, want one wrapping tree.ErrPickle and naming %s", err, Converter)
	}
}

// TestOtherTasks runs xgboost fixtures of package tree through the
// classification and regression heads.
func TestOtherTasks(t *testing.T) {
	tests := []struct {
		name    string
		fixture string
		head    map[string]any
		check   func(t *testing.T, p Prediction, golden []float64)
	}{
		{"multi-class", "multi_softprob", map[string]any{"classes": []any{"a", "b", "c"}},
			func(t *testing.T, p Prediction, golden []float64) {
				if diff := cmp.Diff(golden, p.Probabilities, cmpopts.EquateApprox(0, 1e-5)); diff != "" {
					t.Errorf("probabilities (-xgboost +got):\n%s", diff)
				}
				best := 0
				for i, v := range golden {
					if v > golden[best] {
						best = i
					}
				}
				if p.Label != []string{"a", "b", "c"}[best] || p.Confidence != p.Probabilities[best] {
					t.Errorf("label %q confidence %v for %v", p.Label, p.Confidence, golden)
				}
			}},
		{"multi-class argmax objective", "multi_softmax", map[string]any{},
			func(t *testing.T, p Prediction, golden []float64) {
				if p.Label != string(rune('0'+int(golden[0]))) {
					t.Errorf("label %q, xgboost class %v", p.Label, golden[0])
				}
			}},
		{"binary", "binary_logistic", map[string]any{"classes": []any{"no", "yes"}},
			func(t *testing.T, p Prediction, golden []float64) {
				want := []float64{1 - golden[0], golden[0]}
				if diff := cmp.Diff(want, p.Probabilities, cmpopts.EquateApprox(0, 1e-5)); diff != "" {
					t.Errorf("probabilities (-xgboost +got):\n%s", diff)
				}
			}},
		{"regression", "reg_squarederror", map[string]any{"top_factors": 2},
			func(t *testing.T, p Prediction, golden []float64) {
				if math.Abs(p.Value-golden[0]) > 1e-5 || len(p.Factors) != 2 {
					t.Errorf("value %v, xgboost %v; factors %q", p.Value, golden[0], p.Factors)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := "classification"
			if tt.fixture == "reg_squarederror" {
				task = "regression"
			}
			dir := writeFolder(t, map[string]any{
				"task": task, "model_file": tt.fixture + ".json", "features": numberFeatures(6), "head": tt.head,
			}, filepath.Join(xgbFixes, tt.fixture+".json"))
			m, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			var golden struct {
				Inputs      []*float64
				Predictions []float64
			}
			readJSON(t, filepath.Join(xgbFixes, tt.fixture+".golden.json"), &golden)
			X := make([]float32, len(golden.Inputs))
			for i, v := range golden.Inputs {
				X[i] = float32(math.NaN())
				if v != nil {
					X[i] = float32(*v)
				}
			}
			preds, err := m.PredictFeatures(X)
			if err != nil {
				t.Fatal(err)
			}
			width := len(golden.Predictions) / len(preds)
			for i, p := range preds {
				tt.check(t, p, golden.Predictions[i*width:(i+1)*width])
			}
		})
	}
}

func TestPredictionJSON(t *testing.T) {
	tests := []struct {
		name string
		p    Prediction
		want string
	}{
		{"lead", Prediction{Task: TaskLeadScoring, LeadScore: 72, ConversionProbability: 0.725, Recommendation: "Hot",
			Confidence: 0.25, Factors: []string{"Demo requested (+)"}, FactorDetails: []Factor{{"demo_requested", 1.5}}},
			`{"lead_score":72,"conversion_probability":0.725,"recommendation":"Hot","confidence":0.25,` +
				`"factors":["Demo requested (+)"],"factor_details":[{"feature":"demo_requested","contribution":1.5}]}`},
		{"classification", Prediction{Task: TaskClassification, Label: "b", Classes: []string{"b", "a"},
			Probabilities: []float64{0.75, 0.25}, Confidence: 0.75},
			`{"label":"b","probabilities":{"b":0.75,"a":0.25},"confidence":0.75,"factors":[],"factor_details":[]}`},
		{"regression", Prediction{Task: TaskRegression, Value: 3.5}, `{"value":3.5,"factors":[],"factor_details":[]}`},
		{"escaped text, tiny and huge numbers", Prediction{Task: TaskRegression, Value: -2.5e-7,
			Factors: []string{`Title "VP" <&> (-)`, "Größe (+)"}, FactorDetails: []Factor{{"t", 1e21}, {"g", 0}}},
			`{"value":-2.5e-7,"factors":["Title \"VP\" \u003c\u0026\u003e (-)","Größe (+)"],` +
				`"factor_details":[{"feature":"t","contribution":1e+21},{"feature":"g","contribution":0}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.p)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got  %s\nwant %s", b, tt.want)
			}
			if b, err := tt.p.AppendJSON([]byte("[")); err != nil || string(b) != "["+tt.want {
				t.Errorf("AppendJSON after a prefix: %s %v", b, err)
			}
		})
	}
	if _, err := json.Marshal(Prediction{Task: TaskRegression, Value: math.NaN()}); err == nil {
		t.Error("NaN value marshaled")
	}
}

func BenchmarkPredictDemo(b *testing.B) {
	m := loadDemo(b)
	var golden struct{ Inputs []map[string]any }
	readJSON(b, "testdata/sales_lead_golden.json", &golden)
	rows := make([]jobs.Row, len(golden.Inputs))
	for i, in := range golden.Inputs {
		rows[i], _, _ = m.Schema().Parse(in, strictNow)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Predict(rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
}

// TestFormats loads folders in every model file format and checks the head
// reports what the bare engine computes.
func TestFormats(t *testing.T) {
	tests := []struct {
		name, src, format string
		features          int
	}{
		{"xgboost ubj", filepath.Join(xgbFixes, "binary_logistic.ubj"), FormatXGBoostUBJ, 6},
		{"xgboost json, format from extension", filepath.Join(xgbFixes, "dart_logistic.json"), "", 6},
		{"lightgbm text", "tree/testdata/lightgbm/binary_v3.txt", FormatLightGBMText, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := map[string]any{"task": "lead-scoring", "model_file": filepath.Base(tt.src), "features": numberFeatures(tt.features)}
			if tt.format != "" {
				cfg["format"] = tt.format
			}
			m, err := Load(writeFolder(t, cfg, tt.src))
			if err != nil {
				t.Fatal(err)
			}
			bare, err := tree.Load(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			X := []float32{-1, 0.2, 2, 0.7, -0.3, float32(math.NaN()), 1.5, -2, 0, 0.1, 0.9, -0.6}
			X = X[:len(X)/tt.features*tt.features]
			preds, err := m.PredictFeatures(X)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]float64, len(preds))
			bare.PredictBlock(X, want)
			for i, p := range preds {
				if p.ConversionProbability != want[i] {
					t.Errorf("row %d: probability %v, engine %v", i, p.ConversionProbability, want[i])
				}
			}
		})
	}
}
