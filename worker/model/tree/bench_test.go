package tree

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// Benchmarks run on the model named by HOKUSAI_BENCH_MODEL (any file Load
// reads; tools/bench_vs_xgboost.py trains one with xgboost) or, without
// it, on a synthetic model of the acceptance shape: 200 full trees of
// depth 6 over 10 features, binary:logistic.

const benchRows = 4096

func benchModel(b *testing.B) (*Model, []float32) {
	b.Helper()
	var m *Model
	var err error
	if path := os.Getenv("HOKUSAI_BENCH_MODEL"); path != "" {
		m, err = Load(path)
	} else {
		m, err = LoadXGBoostJSON(strings.NewReader(syntheticXGBoost(200, 6, 10, 1)))
	}
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 3))
	X := make([]float32, benchRows*m.NumFeatures())
	for i := range X {
		X[i] = float32(rng.NormFloat64())
		if rng.IntN(10) == 0 {
			X[i] = float32(math.NaN())
		}
	}
	return m, X
}

// syntheticXGBoost writes an xgboost JSON model of full binary trees with
// random splits on standard-normal features and consistent covers.
func syntheticXGBoost(trees, depth, features int, seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, 0))
	var sb strings.Builder
	fmt.Fprintf(&sb, `{"learner":{"learner_model_param":{"base_score":"5E-1","num_class":"0","num_feature":"%d","num_target":"1"},`, features)
	sb.WriteString(`"objective":{"name":"binary:logistic"},"gradient_booster":{"name":"gbtree","model":{"tree_info":[`)
	for i := range trees {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString("0")
	}
	sb.WriteString(`],"trees":[`)
	n := 1<<(depth+1) - 1
	list := func(f func(i int) string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = f(i)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	for t := range trees {
		if t > 0 {
			sb.WriteString(",")
		}
		cover := make([]float64, n)
		for i := n - 1; i >= 0; i-- {
			if 2*i+1 < n {
				cover[i] = cover[2*i+1] + cover[2*i+2]
			} else {
				cover[i] = 1 + float64(rng.IntN(20))
			}
		}
		leaf := func(i int) bool { return 2*i+1 >= n }
		fmt.Fprintf(&sb, `{"left_children":%s,"right_children":%s,"split_indices":%s,"split_conditions":%s,"default_left":%s,"sum_hessian":%s}`,
			list(func(i int) string {
				if leaf(i) {
					return "-1"
				}
				return fmt.Sprint(2*i + 1)
			}),
			list(func(i int) string {
				if leaf(i) {
					return "-1"
				}
				return fmt.Sprint(2*i + 2)
			}),
			list(func(i int) string { return fmt.Sprint(rng.IntN(features)) }),
			list(func(i int) string {
				if leaf(i) {
					return fmt.Sprint(float32(rng.NormFloat64() * 0.1))
				}
				return fmt.Sprint(float32(rng.NormFloat64() * 0.8))
			}),
			list(func(i int) string { return fmt.Sprint(rng.IntN(2)) }),
			list(func(i int) string { return fmt.Sprint(cover[i]) }),
		)
	}
	sb.WriteString(`]}}}}`)
	return sb.String()
}

func BenchmarkPredictRow(b *testing.B) {
	m, X := benchModel(b)
	nf := m.NumFeatures()
	out := make([]float64, m.NumOutputs())
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.PredictRow(X[i*nf:(i+1)*nf], out)
		i = (i + 1) % benchRows
	}
}

func BenchmarkPredictBlock(b *testing.B) {
	m, X := benchModel(b)
	out := make([]float64, benchRows*m.PredictWidth())
	b.ReportAllocs()
	for b.Loop() {
		m.PredictBlock(X, out)
	}
	b.ReportMetric(float64(b.N)*benchRows/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkContributions(b *testing.B) { benchContributions(b, maxTableBytes) }

// BenchmarkContributionsWalk is BenchmarkContributions without tables.
func BenchmarkContributionsWalk(b *testing.B) { benchContributions(b, 0) }

func benchContributions(b *testing.B, tableBytes int) {
	m, X := benchModel(b)
	m.shapOnce.Do(func() { m.shap = m.buildShapTables(tableBytes) })
	nf := m.NumFeatures()
	out := make([]float64, m.NumOutputs()*(nf+1))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.Contributions(X[i*nf:(i+1)*nf], out)
		i = (i + 1) % benchRows
	}
	b.ReportMetric(float64(m.shap.bytes())/(1<<20), "table-MiB")
}
