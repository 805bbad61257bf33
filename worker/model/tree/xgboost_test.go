package tree

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// golden is what tools/xgb_fixtures.py writes next to each model: inputs
// (null = missing) and xgboost 1.7.4's own outputs, flattened row-major.
type golden struct {
	NumFeatures   int        `json:"num_features"`
	Rows          int        `json:"rows"`
	Inputs        []*float64 `json:"inputs"`
	Predictions   []float64  `json:"predictions"`
	Margins       []float64  `json:"margins"`
	Contributions []float64  `json:"contributions"`
}

func readGolden(t *testing.T, name string) (golden, []float32) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "xgb", name+".golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	x := make([]float32, len(g.Inputs))
	for i, v := range g.Inputs {
		if v == nil {
			x[i] = float32(math.NaN())
		} else {
			x[i] = float32(*v)
		}
	}
	return g, x
}

var xgbCases = []string{
	"binary_logistic", "binary_logitraw", "reg_squarederror", "reg_logistic",
	"count_poisson", "multi_softprob", "multi_softmax", "gblinear_logistic",
	"gblinear_multi", "dart_logistic", "categorical", "tiny_categorical",
}

func TestXGBoostGolden(t *testing.T) {
	t.Parallel()
	for _, name := range xgbCases {
		for _, ext := range []string{".json", ".ubj"} {
			t.Run(name+ext, func(t *testing.T) {
				t.Parallel()
				m, err := Load(filepath.Join("testdata", "xgb", name+ext))
				if err != nil {
					t.Fatal(err)
				}
				g, X := readGolden(t, name)
				checkGolden(t, m, g, X)
			})
		}
	}
}

func checkGolden(t *testing.T, m *Model, g golden, X []float32) {
	t.Helper()
	nf, k, w := m.NumFeatures(), m.NumOutputs(), m.PredictWidth()
	if nf != g.NumFeatures {
		t.Fatalf("NumFeatures = %d, want %d", nf, g.NumFeatures)
	}
	if len(g.Margins) != g.Rows*k || len(g.Predictions) != g.Rows*w || len(g.Contributions) != g.Rows*k*(nf+1) {
		t.Fatalf("golden shapes (%d, %d, %d) do not fit %d rows, %d outputs, width %d",
			len(g.Margins), len(g.Predictions), len(g.Contributions), g.Rows, k, w)
	}
	margin := make([]float64, k)
	pred := make([]float64, w)
	contrib := make([]float64, k*(nf+1))
	for r := range g.Rows {
		x := X[r*nf : (r+1)*nf]
		m.MarginRow(x, margin)
		m.PredictRow(x, pred)
		m.Contributions(x, contrib)
		for i := range margin {
			if want := g.Margins[r*k+i]; math.Abs(margin[i]-want) > 1e-5 {
				t.Errorf("row %d: margin[%d] = %v, xgboost %v", r, i, margin[i], want)
			}
			sum := 0.0
			for _, c := range contrib[i*(nf+1) : (i+1)*(nf+1)] {
				sum += c
			}
			if math.Abs(sum-margin[i]) > 1e-4 {
				t.Errorf("row %d: contributions of output %d sum to %v, margin %v", r, i, sum, margin[i])
			}
		}
		for i := range pred {
			if want := g.Predictions[r*w+i]; math.Abs(pred[i]-want) > 1e-5 {
				t.Errorf("row %d: prediction[%d] = %v, xgboost %v", r, i, pred[i], want)
			}
		}
		for i := range contrib {
			if want := g.Contributions[r*len(contrib)+i]; math.Abs(contrib[i]-want) > 1e-4 {
				t.Errorf("row %d: contribution[%d] = %v, xgboost %v", r, i, contrib[i], want)
			}
		}
		if t.Failed() {
			return
		}
	}
	// The block path must agree with the row path.
	block := make([]float64, g.Rows*w)
	m.PredictBlock(X, block)
	for i := range block {
		if math.Abs(block[i]-g.Predictions[i]) > 1e-5 {
			t.Fatalf("PredictBlock value %d = %v, xgboost %v", i, block[i], g.Predictions[i])
		}
	}
}

// TestXGBoost2Layout rewrites a 1.7 model into the 2.x layout (base_score
// as "[...]", categories fields on every tree, booleans written as
// integers) and checks it still matches xgboost's outputs.
func TestXGBoost2Layout(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("testdata", "xgb", "binary_logistic.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	learner := doc["learner"].(map[string]any)
	param := learner["learner_model_param"].(map[string]any)
	if param["base_score"] != "3E-1" {
		t.Fatalf("fixture base_score = %v, want 3E-1", param["base_score"])
	}
	param["base_score"] = "[3E-1]"
	model := learner["gradient_booster"].(map[string]any)["model"].(map[string]any)
	model["iteration_indptr"] = []int{0}
	for _, tr := range model["trees"].([]any) {
		tm := tr.(map[string]any)
		for _, key := range []string{"categories", "categories_nodes", "categories_segments", "categories_sizes"} {
			tm[key] = []int{}
		}
		tm["split_type"] = make([]int, len(tm["left_children"].([]any)))
	}
	doc["version"] = []int{2, 1, 3}
	learner["feature_names"] = []string{"a", "b", "c", "d", "e", "f"}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadXGBoostJSON(strings.NewReader(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.FeatureNames(), ","); got != "a,b,c,d,e,f" {
		t.Errorf("FeatureNames = %q", got)
	}
	g, X := readGolden(t, "binary_logistic")
	checkGolden(t, m, g, X)
}

func TestLoadRefusesPickles(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"model.pkl", "model.joblib", "m.PICKLE"} {
		_, err := Load(filepath.Join(t.TempDir(), name))
		if !errors.Is(err, ErrPickle) {
			t.Errorf("Load(%s) error = %v, want ErrPickle", name, err)
		}
	}
}

// TestConcurrentUse runs every evaluation path from several goroutines on
// one Model (run with -race): the pooled scratch must not be shared.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"multi_softmax", "categorical"} {
		m, err := Load(filepath.Join("testdata", "xgb", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		g, X := readGolden(t, name)
		nf, k := m.NumFeatures(), m.NumOutputs()
		done := make(chan error)
		for range 4 {
			go func() {
				contrib := make([]float64, k*(nf+1))
				block := make([]float64, g.Rows*m.PredictWidth())
				for r := range g.Rows {
					m.Contributions(X[r*nf:(r+1)*nf], contrib)
					for i, c := range contrib {
						if math.Abs(c-g.Contributions[r*len(contrib)+i]) > 1e-4 {
							done <- fmt.Errorf("%s row %d: contribution %d = %v, want %v", name, r, i, c, g.Contributions[r*len(contrib)+i])
							return
						}
					}
				}
				m.PredictBlock(X, block)
				for i, p := range block {
					if math.Abs(p-g.Predictions[i]) > 1e-5 {
						done <- fmt.Errorf("%s: prediction %d = %v, want %v", name, i, p, g.Predictions[i])
						return
					}
				}
				done <- nil
			}()
		}
		for range 4 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}
}

func TestEvaluationDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector randomises sync.Pool; run without -race (make bench does)")
	}
	// Not parallel: AllocsPerRun counts the whole process.
	for _, name := range []string{"multi_softmax", "categorical", "gblinear_multi", "dart_logistic"} {
		m, err := Load(filepath.Join("testdata", "xgb", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		_, X := readGolden(t, name)
		nf, k := m.NumFeatures(), m.NumOutputs()
		x := X[:nf]
		margin := make([]float64, k)
		pred := make([]float64, m.PredictWidth())
		contrib := make([]float64, k*(nf+1))
		block := make([]float64, len(X)/nf*m.PredictWidth())
		for what, f := range map[string]func(){
			"MarginRow":     func() { m.MarginRow(x, margin) },
			"PredictRow":    func() { m.PredictRow(x, pred) },
			"PredictBlock":  func() { m.PredictBlock(X, block) },
			"Contributions": func() { m.Contributions(x, contrib) },
		} {
			if n := testing.AllocsPerRun(20, f); n != 0 {
				t.Errorf("%s %s: %v allocations per call", name, what, n)
			}
		}
	}
}
