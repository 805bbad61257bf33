package tree

import (
	"math"
	"strings"
	"testing"
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
