package model

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hokusai-ai/inference-queue/worker/model/tree"
)

// debianPython is the interpreter with python3-sklearn; other pythons on
// the machine usually lack it.
const debianPython = "/usr/bin/python3"

// TestSklearnConverter trains every estimator kind tools/sklearn_convert.py
// supports, converts it, and compares the engine's predictions on held-out
// rows with sklearn's predict_proba (classifiers) or predict (regressors).
func TestSklearnConverter(t *testing.T) {
	if err := exec.Command(debianPython, "-c", "import sklearn, numpy").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s cannot import sklearn and numpy (%v); CI must install python3-sklearn", debianPython, err)
		}
		t.Skipf("skipping: %s cannot import sklearn and numpy (%v); install python3-sklearn to run it", debianPython, err)
	}
	dir := t.TempDir()
	out, err := exec.Command(debianPython, "testdata/sklearn_cases.py", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("sklearn_cases.py: %v\n%s", err, out)
	}
	var cases struct {
		Features int
		Rows     [][]float64
		Cases    []struct {
			Name, File string
			Want       []float64
		}
	}
	readJSON(t, filepath.Join(dir, "cases.json"), &cases)
	if len(cases.Cases) != 9 {
		t.Fatalf("sklearn_cases.py wrote %d cases, want 9", len(cases.Cases))
	}
	for _, c := range cases.Cases {
		t.Run(c.Name, func(t *testing.T) {
			m, err := tree.Load(filepath.Join(dir, c.File))
			if err != nil {
				t.Fatal(err)
			}
			x := make([]float32, cases.Features)
			got := make([]float64, 1)
			contrib := make([]float64, cases.Features+1)
			for r, row := range cases.Rows {
				for i, v := range row {
					x[i] = float32(v)
				}
				m.PredictRow(x, got)
				if math.Abs(got[0]-c.Want[r]) > 1e-5 {
					t.Errorf("row %d: engine %v, sklearn %v", r, got[0], c.Want[r])
				}
				// The contributions of a converted model still add up.
				m.Contributions(x, contrib)
				var sum float64
				for _, v := range contrib {
					sum += v
				}
				m.MarginRow(x, got)
				if math.Abs(sum-got[0]) > 1e-4 {
					t.Errorf("row %d: contributions sum to %v, margin %v", r, sum, got[0])
				}
			}
		})
	}
}
