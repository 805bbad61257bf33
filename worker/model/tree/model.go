package tree

import (
	"fmt"
	"math"
	"sync"
)

// Model is a compiled tree ensemble or linear model. Build one with a
// loader; it is immutable afterwards and safe for concurrent use.
type Model struct {
	objective   string
	transform   transform
	sigmoidK    float64 // slope of the sigmoid transform (LightGBM sigmoid:k)
	numFeatures int
	numOutputs  int
	baseMargin  []float64 // per output, added to every margin
	names       []string  // feature names from the file, if it has them

	// All trees' nodes share these slices; a tree is a root index into
	// them. value and mean already include the tree's weight (dart,
	// LightGBM average_output).
	nodes []node
	value []float64 // leaf value; 0 for internal nodes
	frac  []float64 // share of the parent's cover (xgboost hessian sum, LightGBM data count)
	mean  []float64 // cover-weighted mean of the leaves below (TreeSHAP)
	cats  []catSet  // categorical nodes hold an index into cats in threshold
	bits  []uint32  // bitset words of all categorical sets
	trees []treeInfo

	maxDepth int // deepest tree, sizes the TreeSHAP scratch
	maxNodes int // largest tree, sizes the TreeSHAP table scratch

	linear []float64 // gblinear: weight[f*numOutputs+g], then one bias per output

	scratch sync.Pool // *scratch for Contributions and multi:softmax

	shapOnce sync.Once
	shap     *shapTables // per-leaf TreeSHAP tables, built on first use
}

// node is one tree node, 16 bytes. Children are adjacent: an internal
// node's right child is left+1, so a step is "right - goLeft" without a
// branch. A leaf has left == right == its own index, feature 0 and a NaN
// threshold, so stepping from a leaf stays on it and a fixed number of
// steps (the tree's depth) reaches the leaf from the root without testing
// for leaves.
type node struct {
	feature   uint32  // feature index in the low 24 bits, flag bits above
	threshold float32 // numeric: go left if x < threshold; categorical: index into cats
	left      int32
	right     int32
}

const (
	featureMask = 1<<24 - 1
	// maxFeatures bounds NumFeatures so a feature index fits the mask.
	maxFeatures = featureMask

	flagDefaultLeft = 1 << 31 // missing values go left
	flagCategorical = 1 << 30 // categorical split, see catDecision
	flagZeroMissing = 1 << 29 // LightGBM missing type Zero: |x| <= 1e-35 is missing
	flagCatTrunc    = 1 << 28 // LightGBM category: truncate before the sign test
	flagSlow        = flagCategorical | flagZeroMissing
)

// catSet is one categorical split's bitset: bit c set sends category c right.
type catSet struct {
	off, n uint32 // words bits[off : off+n]
}

type treeInfo struct {
	root  int32
	depth int32 // edges on the longest root-to-leaf path
	group int32 // output the tree adds to
}

type transform uint8

const (
	transformIdentity transform = iota
	transformSigmoid
	transformExp
	transformSoftmax
	transformArgmax
)

// lightGBMZero is LightGBM's kZeroThreshold: with missing type Zero, values
// this close to 0 count as missing.
const lightGBMZero = 1e-35

// NumFeatures is the number of input values a row must hold.
func (m *Model) NumFeatures() int { return m.numFeatures }

// NumOutputs is the number of margins per row: the number of classes for a
// multi-class model, else 1. Contributions hold NumOutputs groups.
func (m *Model) NumOutputs() int { return m.numOutputs }

// PredictWidth is the number of values PredictRow writes per row:
// NumOutputs, except 1 for multi:softmax (the winning class index).
func (m *Model) PredictWidth() int {
	if m.transform == transformArgmax {
		return 1
	}
	return m.numOutputs
}

// Objective names the training objective as the source file spells it, for
// example "binary:logistic" or, for LightGBM, "binary sigmoid:1".
func (m *Model) Objective() string { return m.objective }

// FeatureNames returns the feature names stored in the model file
// (xgboost feature_names, LightGBM feature_names), or nil when the file has
// none.
func (m *Model) FeatureNames() []string {
	if m.names == nil {
		return nil
	}
	return append([]string(nil), m.names...)
}

// NumTrees is the number of trees (0 for a linear model).
func (m *Model) NumTrees() int { return len(m.trees) }

// step moves from node i one level down for the row starting at X[off].
func (m *Model) step(i int32, X []float32, off int) int32 {
	next, slow := numericStep(m.nodes, i, X, off)
	if slow != 0 {
		return m.slowStep(i, X, off)
	}
	return next
}

// numericStep is step for a numeric split (or a leaf); slow is non-zero
// for a categorical or zero-missing split, which slowStep must decide
// instead.
// It is small enough to inline, and written so the compiler emits
// flag-setting moves rather than branches: a data-dependent branch
// mispredicts on half the nodes.
func numericStep(nodes []node, i int32, X []float32, off int) (next int32, slow uint32) {
	nd := &nodes[i]
	f := nd.feature
	v := X[off+int(f&featureMask)]
	// NaN is tested on the bits (an integer compare) because a float
	// self-comparison compiles to a branch.
	var less, isNaN uint32
	if v < nd.threshold {
		less = 1
	}
	if math.Float32bits(v)&0x7fffffff > 0x7f800000 {
		isNaN = 1
	}
	return nd.right - int32(less|isNaN&(f>>31)), f & flagSlow // f>>31 is flagDefaultLeft
}

// walk takes depth steps from node i for the row starting at X[off].
func (m *Model) walk(i, depth int32, X []float32, off int) int32 {
	for ; depth > 0; depth-- {
		i = m.step(i, X, off)
	}
	return i
}

// walk8 advances eight independent walks by depth steps: lane k starts at
// node ik and reads the row at X[k*stride:]. Interleaving lets the CPU
// overlap eight chains of dependent loads instead of waiting on one; the
// lanes are unrolled by hand because a loop over arrays keeps them in
// memory (measured slower), and few other live values leave them the
// registers.
func (m *Model) walk8(X []float32, stride int, i0, i1, i2, i3, i4, i5, i6, i7, depth int32) (int32, int32, int32, int32, int32, int32, int32, int32) {
	nodes := m.nodes
	for ; depth > 0; depth-- {
		n0, s0 := numericStep(nodes, i0, X, 0)
		if s0 != 0 {
			n0 = m.slowStep(i0, X, 0)
		}
		n1, s1 := numericStep(nodes, i1, X, stride)
		if s1 != 0 {
			n1 = m.slowStep(i1, X, stride)
		}
		n2, s2 := numericStep(nodes, i2, X, 2*stride)
		if s2 != 0 {
			n2 = m.slowStep(i2, X, 2*stride)
		}
		n3, s3 := numericStep(nodes, i3, X, 3*stride)
		if s3 != 0 {
			n3 = m.slowStep(i3, X, 3*stride)
		}
		n4, s4 := numericStep(nodes, i4, X, 4*stride)
		if s4 != 0 {
			n4 = m.slowStep(i4, X, 4*stride)
		}
		n5, s5 := numericStep(nodes, i5, X, 5*stride)
		if s5 != 0 {
			n5 = m.slowStep(i5, X, 5*stride)
		}
		n6, s6 := numericStep(nodes, i6, X, 6*stride)
		if s6 != 0 {
			n6 = m.slowStep(i6, X, 6*stride)
		}
		n7, s7 := numericStep(nodes, i7, X, 7*stride)
		if s7 != 0 {
			n7 = m.slowStep(i7, X, 7*stride)
		}
		i0, i1, i2, i3, i4, i5, i6, i7 = n0, n1, n2, n3, n4, n5, n6, n7
	}
	return i0, i1, i2, i3, i4, i5, i6, i7
}

// slowStep decides categorical and zero-as-missing splits.
func (m *Model) slowStep(i int32, X []float32, off int) int32 {
	nd := &m.nodes[i]
	f := nd.feature
	v := X[off+int(f&featureMask)]
	if v != v || (f&flagZeroMissing != 0 && v >= -lightGBMZero && v <= lightGBMZero) {
		if f&flagDefaultLeft != 0 {
			return nd.left
		}
		return nd.right
	}
	if f&flagCategorical == 0 {
		if v < nd.threshold {
			return nd.left
		}
		return nd.right
	}
	if f&flagCatTrunc != 0 {
		v = float32(math.Trunc(float64(v)))
	}
	cs := m.cats[math.Float32bits(nd.threshold)]
	if v < 0 || v >= float32(cs.n)*32 {
		return nd.left
	}
	c := uint32(v)
	if m.bits[cs.off+c/32]&(1<<(c%32)) != 0 {
		return nd.right
	}
	return nd.left
}

// blockRows is how many rows share one pass over each tree, so a tree's
// nodes stay in L1 cache while the rows walk it.
const blockRows = 64

// MarginRow writes the NumOutputs raw margins of row x into out. NaN marks
// a missing value. It does not allocate.
func (m *Model) MarginRow(x []float32, out []float64) {
	m.MarginBlock(x[:m.numFeatures], out[:m.numOutputs])
}

// PredictRow writes the PredictWidth transformed predictions of row x into
// out. NaN marks a missing value.
func (m *Model) PredictRow(x []float32, out []float64) {
	m.PredictBlock(x[:m.numFeatures], out[:m.PredictWidth()])
}

// MarginBlock writes the margins of the rows in X (row-major, NumFeatures
// values a row; the row count is len(X)/NumFeatures) into out, NumOutputs
// values a row.
func (m *Model) MarginBlock(X []float32, out []float64) {
	n := m.rows(X)
	m.margins(X, n, out[:n*m.numOutputs])
}

// PredictBlock writes the transformed predictions of the rows in X
// (row-major, NumFeatures values a row) into out, PredictWidth values a
// row. It allocates nothing per call once warm.
func (m *Model) PredictBlock(X []float32, out []float64) {
	n := m.rows(X)
	k := m.numOutputs
	if m.transform != transformArgmax {
		out = out[:n*k]
		m.margins(X, n, out)
		for r := 0; r < n; r++ {
			m.apply(out[r*k : r*k+k])
		}
		return
	}
	out = out[:n]
	s := m.getScratch()
	defer m.scratch.Put(s)
	nf := m.numFeatures
	for start := 0; start < n; start += blockRows {
		end := min(start+blockRows, n)
		mg := s.margins[:(end-start)*k]
		m.margins(X[start*nf:end*nf], end-start, mg)
		for r := range end - start {
			out[start+r] = argmax(mg[r*k : r*k+k])
		}
	}
}

func (m *Model) rows(X []float32) int {
	if len(X)%m.numFeatures != 0 {
		panic(fmt.Sprintf("tree: %d input values is not a whole number of %d-feature rows", len(X), m.numFeatures))
	}
	return len(X) / m.numFeatures
}

// margins fills out (n rows of NumOutputs) with the margins of X's n rows.
func (m *Model) margins(X []float32, n int, out []float64) {
	k := m.numOutputs
	for r := 0; r < n; r++ {
		copy(out[r*k:r*k+k], m.baseMargin)
	}
	if m.linear != nil {
		m.linearMargins(X, n, out)
		return
	}
	if n == 1 {
		m.rowMargins(X, out)
		return
	}
	nf := m.numFeatures
	for start := 0; start < n; start += blockRows {
		end := min(start+blockRows, n)
		for _, t := range m.trees {
			g := int(t.group)
			r := start
			for ; r+8 <= end; r += 8 {
				l0, l1, l2, l3, l4, l5, l6, l7 := m.walk8(X[r*nf:(r+8)*nf], nf, t.root, t.root, t.root, t.root, t.root, t.root, t.root, t.root, t.depth)
				for j, l := range [8]int32{l0, l1, l2, l3, l4, l5, l6, l7} {
					out[(r+j)*k+g] += m.value[l]
				}
			}
			for ; r < end; r++ {
				out[r*k+g] += m.value[m.walk(t.root, t.depth, X, r*nf)]
			}
		}
	}
}

// rowMargins adds the trees' outputs for the single row x to out,
// walking eight trees at a time.
func (m *Model) rowMargins(x []float32, out []float64) {
	trees := m.trees
	j := 0
	for ; j+8 <= len(trees); j += 8 {
		t := trees[j : j+8 : j+8]
		depth := max(t[0].depth, t[1].depth, t[2].depth, t[3].depth, t[4].depth, t[5].depth, t[6].depth, t[7].depth)
		l0, l1, l2, l3, l4, l5, l6, l7 := m.walk8(x, 0, t[0].root, t[1].root, t[2].root, t[3].root, t[4].root, t[5].root, t[6].root, t[7].root, depth)
		for q, l := range [8]int32{l0, l1, l2, l3, l4, l5, l6, l7} {
			out[t[q].group] += m.value[l]
		}
	}
	for _, t := range trees[j:] {
		out[t.group] += m.value[m.walk(t.root, t.depth, x, 0)]
	}
}

func (m *Model) linearMargins(X []float32, n int, out []float64) {
	k, nf := m.numOutputs, m.numFeatures
	bias := m.linear[nf*k:]
	for r := 0; r < n; r++ {
		x := X[r*nf : r*nf+nf]
		o := out[r*k : r*k+k]
		for g := range o {
			s := bias[g]
			for f, v := range x {
				if v == v {
					s += float64(v) * m.linear[f*k+g]
				}
			}
			o[g] += s
		}
	}
}

// apply turns one row's margins into predictions in place.
func (m *Model) apply(o []float64) {
	switch m.transform {
	case transformSigmoid:
		for i, v := range o {
			o[i] = 1 / (1 + math.Exp(-m.sigmoidK*v))
		}
	case transformExp:
		for i, v := range o {
			o[i] = math.Exp(v)
		}
	case transformSoftmax:
		hi := math.Inf(-1)
		for _, v := range o {
			hi = max(hi, v)
		}
		sum := 0.0
		for i, v := range o {
			o[i] = math.Exp(v - hi)
			sum += o[i]
		}
		for i := range o {
			o[i] /= sum
		}
	}
}

// argmax is the index of the first largest value, as xgboost's
// multi:softmax reports it.
func argmax(o []float64) float64 {
	best := 0
	for i, v := range o {
		if v > o[best] {
			best = i
		}
	}
	return float64(best)
}

// scratch is per-call working memory, pooled so steady-state calls do not
// allocate.
type scratch struct {
	margins []float64  // blockRows x NumOutputs
	path    []pathElem // TreeSHAP: distinct features on the path
	g       []float64  // TreeSHAP: products per quadrature point
	mask    []uint32   // TreeSHAP tables: followed features per node of a tree
}

func (m *Model) getScratch() *scratch {
	if s, ok := m.scratch.Get().(*scratch); ok {
		return s
	}
	return &scratch{
		margins: make([]float64, blockRows*m.numOutputs),
		path:    make([]pathElem, m.maxDepth+1),
		g:       make([]float64, m.maxDepth/2+2),
		mask:    make([]uint32, m.maxNodes),
	}
}
