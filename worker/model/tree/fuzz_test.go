package tree

import (
	"bytes"
	"math"
	"testing"
)

// The fuzz targets feed arbitrary bytes to each loader: a malformed model
// must give an error, never a panic or a hang, and a model that loads must
// evaluate any row without panicking. Seeds live in testdata/fuzz.

func FuzzLoadXGBoostJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := LoadXGBoostJSON(bytes.NewReader(data))
		exercise(t, m, err)
	})
}

func FuzzLoadXGBoostUBJ(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := LoadXGBoostUBJ(bytes.NewReader(data))
		exercise(t, m, err)
	})
}

func FuzzLoadLightGBM(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := LoadLightGBM(bytes.NewReader(data))
		exercise(t, m, err)
	})
}

// exercise evaluates a loaded model on a few awkward rows.
func exercise(t *testing.T, m *Model, err error) {
	t.Helper()
	if err != nil {
		if m != nil {
			t.Fatalf("loader returned a model with error %v", err)
		}
		return
	}
	nf, k := m.NumFeatures(), m.NumOutputs()
	if nf*k > 1<<16 {
		return // valid but too wide to evaluate cheaply here
	}
	margin := make([]float64, k)
	pred := make([]float64, m.PredictWidth())
	contrib := make([]float64, k*(nf+1))
	for _, v := range []float32{0, float32(math.NaN()), -1, 0.5, 3, 1e30, float32(math.Inf(-1))} {
		x := make([]float32, nf)
		for i := range x {
			x[i] = v
		}
		m.MarginRow(x, margin)
		m.PredictRow(x, pred)
		m.Contributions(x, contrib)
		m.PredictBlock(append(x, x...), make([]float64, 2*m.PredictWidth()))
	}
}
