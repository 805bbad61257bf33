package tree

import "math"

// Path-dependent TreeSHAP (Lundberg et al., "Consistent Individualized
// Feature Attribution for Tree Ensembles") with node covers as the
// background distribution: the definition xgboost's pred_contribs=True
// computes.
//
// Along the path from the root to a leaf, each distinct feature j carries
// z_j, the share of cover that flows down the path when j is unknown, and
// o_j, 1 if the row itself follows the path at j's splits and 0 otherwise
// (a feature split on again multiplies into its entry). With n distinct
// features, the Shapley value of feature k for that leaf (value v) is
//
//	v * (o_k - z_k) * sum over S of |S|!(n-|S|-1)!/n! * prod_{j in S} o_j * prod_{j not in S, j != k} z_j
//	  = v * (o_k - z_k) * integral_0^1 prod_{j != k} (z_j + (o_j - z_j) s) ds
//
// because the weights are the Beta integrals of s^|S| (1-s)^(n-1-|S|).
// The integrand is a polynomial of degree n-1, so Gauss-Legendre
// quadrature with ceil(n/2) points gives it exactly (as in Linear TreeShap,
// Yu et al. 2022). That replaces the original algorithm's permutation
// weights and their O(n^2) unwinding at every leaf with a product per
// quadrature point and one division per feature and point.
//
// Trees with tables (shaptable.go) skip this walk; shapWalk.leaf still
// computes their tables' values.

// pathElem is one distinct feature on the current root-to-node path.
type pathElem struct {
	feature int32
	zero    float64 // z: cover share when the feature is unknown
	one     float64 // o: 1 if the row follows the path at this feature, else 0
}

// quadPoint is a Gauss-Legendre node s on [0, 1] with its weight.
type quadPoint struct{ s, w float64 }

// Contributions writes per-feature contributions of row x into out, which
// must hold NumOutputs()*(NumFeatures()+1) values: for each output, one
// value per feature and the bias (expected margin) last. Each group sums to
// the row's margin for that output. For linear models the contribution of
// feature i is w_i*x_i (0 when x_i is missing). It does not allocate once
// warm.
func (m *Model) Contributions(x []float32, out []float64) {
	x = x[:m.numFeatures]
	stride := m.numFeatures + 1
	out = out[:m.numOutputs*stride]
	clear(out)
	for g, b := range m.baseMargin {
		out[g*stride+m.numFeatures] = b
	}
	if m.linear != nil {
		k := m.numOutputs
		for g := range k {
			phi := out[g*stride : g*stride+stride]
			for f, v := range x {
				if v == v {
					phi[f] = float64(v) * m.linear[f*k+g]
				}
			}
			phi[m.numFeatures] += m.linear[m.numFeatures*k+g]
		}
		return
	}
	sh := m.shapTables()
	s := m.getScratch()
	defer m.scratch.Put(s)
	w := shapWalk{m: m, x: x, path: s.path, g: s.g}
	for t, tr := range m.trees {
		phi := out[int(tr.group)*stride : int(tr.group)*stride+stride]
		phi[m.numFeatures] += m.mean[tr.root]
		if sh.trees[t].fast {
			sh.addTree(m, t, x, phi, s.mask)
			continue
		}
		w.phi = phi
		w.visit(tr.root, 0)
	}
}

type shapWalk struct {
	m    *Model
	x    []float32
	phi  []float64
	path []pathElem // distinct features on the path, maxDepth long
	g    []float64  // per quadrature point products, maxDepth/2+1 long
}

// visit handles node i, reached through the n distinct features in
// w.path[:n]. Children change the path in place and restore it.
func (w *shapWalk) visit(i int32, n int) {
	m := w.m
	nd := &m.nodes[i]
	if nd.left == i {
		w.leaf(w.path[:n], m.value[i])
		return
	}
	hot := m.step(i, w.x, 0)
	cold := nd.left
	if hot == nd.left {
		cold = nd.right
	}
	feat := int32(nd.feature & featureMask)
	for k := range n {
		if e := &w.path[k]; e.feature == feat {
			z, o := e.zero, e.one
			e.zero, e.one = z*m.frac[hot], o
			w.visit(hot, n)
			e.zero, e.one = z*m.frac[cold], 0
			w.visit(cold, n)
			e.zero, e.one = z, o
			return
		}
	}
	w.path[n] = pathElem{feature: feat, zero: m.frac[hot], one: 1}
	w.visit(hot, n+1)
	w.path[n] = pathElem{feature: feat, zero: m.frac[cold], one: 0}
	w.visit(cold, n+1)
}

// leaf adds the contributions of the features on path for a leaf of value v.
func (w *shapWalk) leaf(path []pathElem, v float64) {
	if len(path) == 0 {
		return
	}
	quad := gaussLegendre[(len(path)+1)/2]
	g := w.g[:len(quad)]
	for q, p := range quad {
		prod := p.w
		for _, e := range path {
			prod *= e.zero + (e.one-e.zero)*p.s
		}
		g[q] = prod
	}
	// Every feature the row does not follow has the factor z_k (1-s), and
	// (o_k - z_k) = -z_k cancels z_k: they all get the same value.
	cold, coldDone := 0.0, false
	for _, e := range path {
		if e.one == 0 {
			if e.zero == 0 {
				continue // (o - z) is 0
			}
			if !coldDone {
				for q, p := range quad {
					cold += g[q] / (1 - p.s)
				}
				cold *= -v
				coldDone = true
			}
			w.phi[e.feature] += cold
			continue
		}
		sum := 0.0
		for q, p := range quad {
			sum += g[q] / (e.zero + (e.one-e.zero)*p.s)
		}
		w.phi[e.feature] += v * (e.one - e.zero) * sum
	}
}

// gaussLegendre[n] holds the n-point Gauss-Legendre rule on [0, 1], exact
// for polynomials of degree 2n-1; paths are at most maxTreeDepth long.
var gaussLegendre = func() [][]quadPoint {
	rules := make([][]quadPoint, maxTreeDepth/2+2)
	for n := 1; n < len(rules); n++ {
		rules[n] = legendreRule(n)
	}
	return rules
}()

// legendreRule finds the roots of the Legendre polynomial P_n by Newton's
// method from the usual cosine guesses, and maps nodes and weights from
// [-1, 1] to [0, 1].
func legendreRule(n int) []quadPoint {
	rule := make([]quadPoint, n)
	for i := range (n + 1) / 2 {
		x := math.Cos(math.Pi * (float64(i) + 0.75) / (float64(n) + 0.5))
		var dp float64
		for range 100 {
			// P_n(x) by the three-term recurrence; dp is P_n'(x).
			p, prev := 1.0, 0.0
			for j := 1; j <= n; j++ {
				p, prev = (float64(2*j-1)*x*p-float64(j-1)*prev)/float64(j), p
			}
			dp = float64(n) * (x*p - prev) / (x*x - 1)
			dx := p / dp
			x -= dx
			if math.Abs(dx) < 1e-16 {
				break
			}
		}
		w := 1 / ((1 - x*x) * dp * dp) // half the [-1, 1] weight
		rule[i] = quadPoint{s: (1 - x) / 2, w: w}
		rule[n-1-i] = quadPoint{s: (1 + x) / 2, w: w}
	}
	return rule
}
