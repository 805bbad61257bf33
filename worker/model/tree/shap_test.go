package tree

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"
)

// TreeSHAP relies on the n-point rule integrating every polynomial of
// degree up to 2n-1 exactly: check the monomials, integral of s^k = 1/(k+1).
func TestGaussLegendreExact(t *testing.T) {
	t.Parallel()
	for n := 1; n < len(gaussLegendre); n++ {
		for k := 0; k <= 2*n-1; k++ {
			got := 0.0
			for _, p := range gaussLegendre[n] {
				got += p.w * math.Pow(p.s, float64(k))
			}
			if want := 1 / float64(k+1); math.Abs(got-want) > 1e-12 {
				t.Fatalf("%d-point rule integrates s^%d to %v, want %v", n, k, got, want)
			}
		}
	}
}

// TestContributionsBruteForce checks TreeSHAP on deep trees with repeated
// features against Shapley values computed by enumerating all feature
// subsets of the game v(S) = E[f(x) | x_S], the expectation following the
// row at splits on known features and weighting both children by cover
// elsewhere.
func TestContributionsBruteForce(t *testing.T) {
	t.Parallel()
	const nf = 8
	m, err := LoadXGBoostJSON(strings.NewReader(syntheticXGBoost(3, 9, nf, 5)))
	if err != nil {
		t.Fatal(err)
	}
	var expect func(i int32, x []float32, known uint) float64
	expect = func(i int32, x []float32, known uint) float64 {
		nd := &m.nodes[i]
		if nd.left == i {
			return m.value[i]
		}
		if known&(1<<(nd.feature&featureMask)) != 0 {
			return expect(m.step(i, x, 0), x, known)
		}
		return m.frac[nd.left]*expect(nd.left, x, known) + m.frac[nd.right]*expect(nd.right, x, known)
	}
	value := func(x []float32, known uint) float64 {
		s := m.baseMargin[0]
		for _, tr := range m.trees {
			s += expect(tr.root, x, known)
		}
		return s
	}
	fact := func(n int) float64 { return math.Gamma(float64(n + 1)) }
	rows := [][]float32{
		{0.1, -0.3, 1.2, nan, 0, 2, -1, 0.5},
		{nan, nan, nan, nan, nan, nan, nan, nan},
		{-2, 2, -0.1, 0.1, 0.7, -0.7, 0.3, -0.3},
	}
	got := make([]float64, nf+1)
	for _, x := range rows {
		m.Contributions(x, got)
		want := make([]float64, nf+1)
		want[nf] = value(x, 0)
		for S := uint(0); S < 1<<nf; S++ {
			size := 0
			for j := range nf {
				size += int(S >> j & 1)
			}
			vS := value(x, S)
			for i := range nf {
				if S&(1<<i) != 0 {
					continue
				}
				weight := fact(size) * fact(nf-size-1) / fact(nf)
				want[i] += weight * (value(x, S|1<<i) - vS)
			}
		}
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-9 {
				t.Errorf("row %v: contribution[%d] = %v, brute force %v", x, i, got[i], want[i])
			}
		}
	}
}

// zeroCoverXGB is a two-level tree whose right child (a leaf) has no
// cover: its z is 0, so the tree has no tables.
const zeroCoverXGB = `{"learner":{"learner_model_param":{"base_score":"5E-1","num_class":"0","num_feature":"2"},
"objective":{"name":"reg:squarederror"},"gradient_booster":{"name":"gbtree","model":{"tree_info":[0],
"trees":[{"left_children":[1,3,-1,-1,-1],"right_children":[2,4,-1,-1,-1],"split_indices":[0,1,0,0,0],
"split_conditions":[0.5,0.5,3,1,2],"default_left":[1,0,0,0,0],"sum_hessian":[2,2,0,1,1]}]}}}}`

// TestContributionsTables checks the per-leaf tables against the walk (the
// same model with no table budget) on every fixture and on random deeper
// trees, with the trees' tables counted so both paths stay exercised.
func TestContributionsTables(t *testing.T) {
	t.Parallel()
	type tabled int
	const (
		all tabled = iota
		some
		none
	)
	fixture := func(path string) func() (*Model, error) {
		return func() (*Model, error) { return Load(path) }
	}
	synthetic := func(trees, depth, features int, seed uint64) func() (*Model, error) {
		return func() (*Model, error) {
			return LoadXGBoostJSON(strings.NewReader(syntheticXGBoost(trees, depth, features, seed)))
		}
	}
	cases := []struct {
		name   string
		load   func() (*Model, error)
		budget int // table bytes; 0 for maxTableBytes
		want   tabled
	}{
		{"lightgbm binary", fixture("testdata/lightgbm/binary_v3.txt"), 0, all},
		{"lightgbm multiclass", fixture("testdata/lightgbm/multiclass_v4.txt"), 0, all},
		{"depth 9", synthetic(4, 9, 12, 7), 0, all},
		{"depth 13, 4 features", synthetic(2, 13, 4, 8), 0, all},
		{"depth 14, 24 features", synthetic(2, 14, 24, 9), 0, none},
		{"depth 8, half the budget", synthetic(8, 8, 10, 5), 1 << 20, some},
		{"zero cover", func() (*Model, error) { return LoadXGBoostJSON(strings.NewReader(zeroCoverXGB)) }, 0, none},
	}
	for _, name := range xgbCases {
		if !strings.HasPrefix(name, "gblinear") {
			cases = append(cases, struct {
				name   string
				load   func() (*Model, error)
				budget int
				want   tabled
			}{name, fixture(filepath.Join("testdata", "xgb", name+".json")), 0, all})
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fast, err := c.load()
			if err != nil {
				t.Fatal(err)
			}
			walk, err := c.load()
			if err != nil {
				t.Fatal(err)
			}
			if c.budget != 0 {
				fast.shapOnce.Do(func() { fast.shap = fast.buildShapTables(c.budget) })
			}
			walk.shapOnce.Do(func() { walk.shap = walk.buildShapTables(0) })
			count := func(m *Model) (n int) {
				for _, st := range m.shapTables().trees {
					if st.fast {
						n++
					}
				}
				return n
			}
			got, trees := count(fast), fast.NumTrees()
			if n := count(walk); n != 0 {
				t.Fatalf("%d trees have tables with no budget", n)
			}
			if want := map[tabled]bool{all: got == trees, some: got > 0 && got < trees, none: got == 0}[c.want]; !want {
				t.Fatalf("%d of %d trees have tables", got, trees)
			}
			nf, k := fast.NumFeatures(), fast.NumOutputs()
			rng := rand.New(rand.NewPCG(uint64(len(c.name)), 1))
			x := make([]float32, nf)
			a, b := make([]float64, k*(nf+1)), make([]float64, k*(nf+1))
			for r := range 20 {
				for i := range x {
					switch rng.IntN(8) {
					case 0:
						x[i] = nan
					case 1:
						x[i] = float32(rng.IntN(40)) // categories
					default:
						x[i] = float32(rng.NormFloat64())
					}
				}
				fast.Contributions(x, a)
				walk.Contributions(x, b)
				for i := range a {
					if math.Abs(a[i]-b[i]) > 1e-12*(1+math.Abs(b[i])) {
						t.Fatalf("row %d %v: contribution %d with tables %v, walk %v", r, x, i, a[i], b[i])
					}
				}
			}
		})
	}
}

// bytes is the memory the tables take.
func (sh *shapTables) bytes() int {
	n := len(sh.trees)*int(unsafe.Sizeof(shapTree{})) + len(sh.tab)*8 + len(sh.feats)*4
	for _, st := range sh.trees {
		n += len(st.splits)*int(unsafe.Sizeof(tableSplit{})) + len(st.leaves)*int(unsafe.Sizeof(tableLeaf{}))
	}
	return n
}
