package tree

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
)

var (
	nan   = float32(math.NaN())
	inf32 = float32(math.Inf(1))
)

// The expected margins below were derived by walking the trees of the
// hand-written testdata/lightgbm files by hand with LightGBM's rules (left
// if x <= threshold; missing types None/Zero/NaN; categories in the bitset
// go left, NaN and negatives right), never by running the engine.
func TestLightGBMBinary(t *testing.T) {
	t.Parallel()
	m, err := Load(filepath.Join("testdata", "lightgbm", "binary_v3.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if m.NumFeatures() != 3 || m.NumOutputs() != 1 || m.Objective() != "binary sigmoid:1" {
		t.Fatalf("model shape = (%d, %d, %q)", m.NumFeatures(), m.NumOutputs(), m.Objective())
	}
	tests := []struct {
		name   string
		x      []float32
		margin float64
	}{
		// tree 0: x0 <= 0.5000000000000001 (NaN type, NaN right) then
		// x1 <= -1.25 (NaN type, NaN left); leaves 0.3, -0.2, 0.5.
		// tree 1: x2 <= 1e-35 (Zero type, missing right); leaves -0.1, 0.15.
		{"left-left, positive x2", []float32{0.2, -2, 1}, 0.3 + 0.15},
		{"NaN right, zero is missing", []float32{nan, 0, 0}, 0.5 + 0.15},
		{"threshold inclusive, NaN default left", []float32{0.5, nan, -3}, 0.3 - 0.1},
		{"next float32 above threshold, NaN read as zero", []float32{0.50000006, -1.25, nan}, 0.5 + 0.15},
		{"tiny negative beyond zero band", []float32{-1, -1.25, -2e-35}, 0.3 - 0.1},
		{"inside zero band", []float32{-1, -1.2, 1e-36}, -0.2 + 0.15},
	}
	var rows [][]float32
	for _, tt := range tests {
		rows = append(rows, tt.x)
	}
	checkBlockMatchesRows(t, m, rows)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var margin, pred [1]float64
			m.MarginRow(tt.x, margin[:])
			m.PredictRow(tt.x, pred[:])
			if math.Abs(margin[0]-tt.margin) > 1e-12 {
				t.Errorf("margin = %v, want %v", margin[0], tt.margin)
			}
			if want := 1 / (1 + math.Exp(-tt.margin)); math.Abs(pred[0]-want) > 1e-12 {
				t.Errorf("prediction = %v, want %v", pred[0], want)
			}
		})
	}

	// TreeSHAP by hand for x = (0.2, -2, 1). Tree 1 is a stump on x2 with
	// covers 40/20: phi2 = 0.15 - mean, mean = (40*-0.1 + 20*0.15)/60.
	// Tree 0 on x0, x1 with leaf covers 10, 20, 30: with S the known set,
	// v({}) = 14/60, v({0}) = (10*0.3 + 20*-0.2)/30, v({1}) = (0.3 + 0.5)/2,
	// v({0,1}) = 0.3, and each Shapley value averages the two orders.
	mean1 := (40*-0.1 + 20*0.15) / 60.0
	v0, v1, v01, vNone := (10*0.3+20*-0.2)/30.0, (0.3+0.5)/2, 0.3, 14/60.0
	want := []float64{
		((v0 - vNone) + (v01 - v1)) / 2,
		((v1 - vNone) + (v01 - v0)) / 2,
		0.15 - mean1,
		vNone + mean1,
	}
	got := make([]float64, 4)
	m.Contributions([]float32{0.2, -2, 1}, got)
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Errorf("contribution[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestLightGBMMulticlass(t *testing.T) {
	t.Parallel()
	m, err := Load(filepath.Join("testdata", "lightgbm", "multiclass_v4.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if m.NumFeatures() != 4 || m.NumOutputs() != 3 || m.PredictWidth() != 3 {
		t.Fatalf("model shape = (%d, %d, %d)", m.NumFeatures(), m.NumOutputs(), m.PredictWidth())
	}
	if got := strings.Join(m.FeatureNames(), " "); got != "size industry score visits" {
		t.Errorf("FeatureNames = %q", got)
	}
	// Trees interleave classes: trees 0 and 3 are class 0, 1 and 4 class
	// 1, 2 and 5 class 2.
	// class 0: tree 0: x1 in {1,3,33} ? 0.6 : (x0 <= 2.5 ? -0.4 : 0.2), None
	//          type so NaN x0 reads 0; tree 3: x3 <= 10 ? 0.1 : -0.1, NaN left.
	// class 1: tree 1: x2 <= -0.25 ? -0.3 : 0.45, None type (NaN reads 0,
	//          default_left ignored); tree 4: x0 <= -0.5 ? 0.25 : -0.05.
	// class 2: tree 2: 0.05 always; tree 5: x1 in {0} ? -0.2 : 0.3.
	tests := []struct {
		name    string
		x       []float32
		margins [3]float64
	}{
		{"category in set", []float32{1, 3, 0, 5}, [3]float64{0.6 + 0.1, 0.45 - 0.05, 0.05 + 0.3}},
		{"all missing", []float32{nan, nan, nan, nan}, [3]float64{-0.4 + 0.1, 0.45 - 0.05, 0.05 + 0.3}},
		{"category in second word", []float32{3, 33, -1, 11}, [3]float64{0.6 - 0.1, -0.3 - 0.05, 0.05 + 0.3}},
		{"fraction truncates to category 0", []float32{-1, -0.5, -0.25, 10}, [3]float64{-0.4 + 0.1, -0.3 + 0.25, 0.05 - 0.2}},
		{"category beyond bitset", []float32{2.5, 64, 0.5, 1e30}, [3]float64{-0.4 - 0.1, 0.45 - 0.05, 0.05 + 0.3}},
		{"negative category", []float32{0, -1, 0, 0}, [3]float64{-0.4 + 0.1, 0.45 - 0.05, 0.05 + 0.3}},
		{"fraction truncates to category 1", []float32{1, 1.9, 0, 5}, [3]float64{0.6 + 0.1, 0.45 - 0.05, 0.05 + 0.3}},
	}
	var rows [][]float32
	for _, tt := range tests {
		rows = append(rows, tt.x)
	}
	checkBlockMatchesRows(t, m, rows)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var margin, pred [3]float64
			m.MarginRow(tt.x, margin[:])
			m.PredictRow(tt.x, pred[:])
			sum := 0.0
			for _, v := range tt.margins {
				sum += math.Exp(v)
			}
			for i := range 3 {
				if math.Abs(margin[i]-tt.margins[i]) > 1e-12 {
					t.Errorf("margin[%d] = %v, want %v", i, margin[i], tt.margins[i])
				}
				if want := math.Exp(tt.margins[i]) / sum; math.Abs(pred[i]-want) > 1e-12 {
					t.Errorf("prediction[%d] = %v, want %v", i, pred[i], want)
				}
			}
			contrib := make([]float64, 3*5)
			m.Contributions(tt.x, contrib)
			for g := range 3 {
				s := 0.0
				for _, c := range contrib[g*5 : g*5+5] {
					s += c
				}
				if math.Abs(s-tt.margins[g]) > 1e-12 {
					t.Errorf("contributions of class %d sum to %v, want %v", g, s, tt.margins[g])
				}
			}
		})
	}
}

func TestLightGBMAverageOutput(t *testing.T) {
	t.Parallel()
	// Two one-leaf trees (random-forest mode): the output is their mean.
	text := "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nmax_feature_idx=0\n" +
		"objective=regression\naverage_output\n\n" +
		"Tree=0\nnum_leaves=1\nleaf_value=1\n\nTree=1\nnum_leaves=1\nleaf_value=2\n\nend of trees\n"
	m, err := LoadLightGBM(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	var out [1]float64
	m.PredictRow([]float32{0}, out[:])
	if out[0] != 1.5 {
		t.Errorf("prediction = %v, want 1.5", out[0])
	}
}

func TestLessBound(t *testing.T) {
	t.Parallel()
	for _, th := range []float64{0.5, 0.50000000000000011, -1.25, 1e-35, 1.0 / 3, -7.1e12, 3e38, -3e38, 0} {
		bound := lessBound(th)
		f := float32(th)
		for _, x := range []float32{f, math.Nextafter32(f, inf32), math.Nextafter32(f, -inf32)} {
			if got, want := x < bound, float64(x) <= th; got != want {
				t.Errorf("threshold %v, x %v: x < bound is %v, x <= threshold is %v", th, x, got, want)
			}
		}
	}
}

// checkBlockMatchesRows repeats rows into a block long enough for the
// interleaved walks and checks PredictBlock against PredictRow.
func checkBlockMatchesRows(t *testing.T, m *Model, rows [][]float32) {
	t.Helper()
	var X []float32
	for len(X) < 20*m.NumFeatures() {
		for _, r := range rows {
			X = append(X, r...)
		}
	}
	w, nf := m.PredictWidth(), m.NumFeatures()
	block := make([]float64, len(X)/nf*w)
	m.PredictBlock(X, block)
	row := make([]float64, w)
	for r := range len(X) / nf {
		m.PredictRow(X[r*nf:(r+1)*nf], row)
		for i, v := range row {
			if block[r*w+i] != v {
				t.Fatalf("row %d: PredictBlock %v, PredictRow %v", r, block[r*w:(r+1)*w], row)
			}
		}
	}
}
