package tree

// Path-dependent TreeSHAP (Lundberg et al., "Consistent Individualized
// Feature Attribution for Tree Ensembles", algorithm 2), with node covers as
// the background distribution, the definition xgboost's pred_contribs=True
// uses.

// pathElem is one feature on the unique path from the root to the current
// node: the fraction of cover that flows along the path when the feature is
// unknown (zero) or known (one), and the permutation weight of the subset
// sizes.
type pathElem struct {
	feature int32
	zero    float64
	one     float64
	weight  float64
}

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
	s := m.getScratch()
	defer m.scratch.Put(s)
	w := shapWalk{m: m, x: x, path: s.path}
	for _, t := range m.trees {
		w.phi = out[int(t.group)*stride : int(t.group)*stride+stride]
		w.phi[m.numFeatures] += m.mean[t.root]
		w.visit(t.root, 0, 0, 1, 1, -1)
	}
}

type shapWalk struct {
	m    *Model
	x    []float32
	phi  []float64
	path []pathElem
}

// visit handles node i. The parent's unique path is path[off : off+n];
// this node's path is built right after it, extended by the feature the
// parent split on (pf) with fractions pz and po.
func (w *shapWalk) visit(i int32, off, n int, pz, po float64, pf int32) {
	m := w.m
	path := w.path[off+n : off+2*n+1]
	for j, e := range w.path[off : off+n] {
		path[j] = e // a loop beats memmove for these few elements
	}
	extendPath(path, n, pz, po, pf)
	last := n // index of the last element of path
	nd := &m.nodes[i]
	if nd.left == i {
		w.leaf(path, last, m.value[i])
		return
	}
	hot := m.step(i, w.x, 0)
	cold := nd.left
	if hot == nd.left {
		cold = nd.right
	}
	hz, cz := m.frac[hot], m.frac[cold]
	feat := int32(nd.feature & featureMask)
	iz, io := 1.0, 1.0
	// A feature split on earlier in the path is unwound so this split can
	// redo it with the combined fractions.
	for k := 1; k <= last; k++ {
		if path[k].feature == feat {
			iz, io = path[k].zero, path[k].one
			unwindPath(path, last, k)
			last--
			break
		}
	}
	next := off + n
	w.visit(hot, next, last+1, hz*iz, io, feat)
	w.visit(cold, next, last+1, cz*iz, 0, feat)
}

// recip[i] is 1/i: the path updates multiply instead of divide, which
// is most of TreeSHAP's cost.
var recip = func() (r [maxTreeDepth + 3]float64) {
	for i := 1; i < len(r); i++ {
		r[i] = 1 / float64(i)
	}
	return r
}()

// extendPath appends (feature, zero, one) as path[n] and updates the
// permutation weights of path[0..n].
func extendPath(path []pathElem, n int, zero, one float64, feature int32) {
	path[n] = pathElem{feature: feature, zero: zero, one: one}
	if n == 0 {
		path[0].weight = 1
	}
	invD := recip[n+1]
	for i := n - 1; i >= 0; i-- {
		w := path[i].weight * invD
		path[i+1].weight += one * w * float64(i+1)
		path[i].weight = zero * w * float64(n-i)
	}
}

// unwindPath removes path[k] (last is the index of the final element),
// undoing its extension.
func unwindPath(path []pathElem, last, k int) {
	one, zero := path[k].one, path[k].zero
	d, invD := float64(last+1), recip[last+1]
	next := path[last].weight
	if one != 0 {
		dOne := d / one
		for i := last - 1; i >= 0; i-- {
			t := path[i].weight
			path[i].weight = next * dOne * recip[i+1]
			next = t - path[i].weight*zero*float64(last-i)*invD
		}
	} else {
		dZero := d / zero
		for i := last - 1; i >= 0; i-- {
			path[i].weight *= dZero * recip[last-i]
		}
	}
	// Weights stay where they were recomputed; only the split records move.
	for i := k; i < last; i++ {
		path[i].feature, path[i].zero, path[i].one = path[i+1].feature, path[i+1].zero, path[i+1].one
	}
}

// leaf adds the contributions of the features on path (last is the index
// of its final element) for a leaf of value v. Each feature's share is the
// path's permutation weight with that feature unwound, times (one - zero).
func (w *shapWalk) leaf(path []pathElem, last int, v float64) {
	d := float64(last + 1)
	// For a feature the row does not follow (one == 0) the unwound weight
	// is d/zero * sum(weight[i]/(last-i)), and the zero cancels against
	// (one - zero): all such features get the same -d*sum*v.
	cold, coldDone := 0.0, false
	for k := 1; k <= last; k++ {
		e := &path[k]
		if e.one == 0 {
			if e.zero == 0 {
				continue
			}
			if !coldDone {
				for i := last - 1; i >= 0; i-- {
					cold += path[i].weight * recip[last-i]
				}
				cold *= -d * v
				coldDone = true
			}
			w.phi[e.feature] += cold
			continue
		}
		// next(i-1) = weight(i) - next(i)*c(i) keeps the loop-carried
		// chain to a multiply and a subtract.
		next, total := path[last].weight, 0.0
		dOne, zd := d/e.one, e.zero/e.one
		for i := last - 1; i >= 0; i-- {
			r := recip[i+1]
			total += next * dOne * r
			next = path[i].weight - next*zd*float64(last-i)*r
		}
		w.phi[e.feature] += total * (e.one - e.zero) * v
	}
}
