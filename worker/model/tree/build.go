package tree

import (
	"errors"
	"fmt"
	"math"
)

// maxTreeDepth bounds tree depth: it keeps TreeSHAP's scratch small and
// turns degenerate chains into errors instead of slow models.
const maxTreeDepth = 256

// rawNode is a node as a loader reads it, before validation and layout.
// Children index the loader's own node slice; a leaf has left == right == -1.
type rawNode struct {
	left, right int64
	feature     int64
	threshold   float32  // numeric: go left if x < threshold
	flags       uint32   // flagDefaultLeft, flagZeroMissing, flagCatTrunc
	cats        []uint32 // non-nil: categorical split, bit c set sends c right
	value       float64  // leaf value
	cover       float64
}

// builder assembles a Model from validated trees.
type builder struct {
	m *Model
}

func newBuilder(objective string, numFeatures, numOutputs int) (*builder, error) {
	if numFeatures <= 0 || numFeatures > maxFeatures {
		return nil, fmt.Errorf("number of features %d is outside [1, %d]", numFeatures, maxFeatures)
	}
	if numOutputs <= 0 || numOutputs > 1<<16 {
		return nil, fmt.Errorf("number of outputs %d is outside [1, 65536]", numOutputs)
	}
	return &builder{m: &Model{
		objective:   objective,
		sigmoidK:    1,
		numFeatures: numFeatures,
		numOutputs:  numOutputs,
		baseMargin:  make([]float64, numOutputs),
	}}, nil
}

// addTree validates nodes (root at 0), lays them out breadth first and
// appends the tree to output group. weight scales the leaf values.
func (b *builder) addTree(nodes []rawNode, group int, weight float64) error {
	m := b.m
	if len(nodes) == 0 {
		return errors.New("tree has no nodes")
	}
	if group < 0 || group >= m.numOutputs {
		return fmt.Errorf("tree output group %d is outside [0, %d)", group, m.numOutputs)
	}
	if len(m.nodes)+len(nodes) > math.MaxInt32 {
		return errors.New("model has too many nodes")
	}
	// Breadth-first walk from the root: every node may be reached once,
	// which rules out cycles and shared subtrees.
	base := int32(len(m.nodes))
	newIdx := make([]int32, len(nodes))
	for i := range newIdx {
		newIdx[i] = -1
	}
	depthOf := make([]int32, 0, len(nodes))
	order := make([]int64, 0, len(nodes))
	order = append(order, 0)
	depthOf = append(depthOf, 0)
	newIdx[0] = base
	depth := int32(0)
	for q := 0; q < len(order); q++ {
		r := &nodes[order[q]]
		d := depthOf[q]
		depth = max(depth, d)
		if r.left == -1 && r.right == -1 {
			continue
		}
		if d >= maxTreeDepth {
			return fmt.Errorf("tree is deeper than %d levels", maxTreeDepth)
		}
		if r.feature < 0 || r.feature >= int64(m.numFeatures) {
			return fmt.Errorf("node %d splits on feature %d, outside [0, %d)", order[q], r.feature, m.numFeatures)
		}
		for _, c := range [2]int64{r.left, r.right} {
			if c < 0 || c >= int64(len(nodes)) {
				return fmt.Errorf("node %d has child %d, outside [0, %d)", order[q], c, len(nodes))
			}
			if newIdx[c] >= 0 {
				return fmt.Errorf("node %d is reached twice (cycle or shared child)", c)
			}
			newIdx[c] = base + int32(len(order))
			order = append(order, c)
			depthOf = append(depthOf, d+1)
		}
	}
	cover := make([]float64, len(order))
	for q, old := range order {
		r := &nodes[old]
		self := newIdx[old]
		cover[q] = r.cover
		if r.left == -1 && r.right == -1 {
			m.nodes = append(m.nodes, node{threshold: float32(math.NaN()), left: self, right: self})
			m.value = append(m.value, r.value*weight)
			continue
		}
		nd := node{
			feature:   uint32(r.feature) | r.flags,
			threshold: r.threshold,
			left:      newIdx[r.left],
			right:     newIdx[r.right],
		}
		if r.cats != nil {
			if len(r.cats) > 1<<20 || len(m.cats) >= 1<<31 {
				return errors.New("categorical split too large")
			}
			nd.feature |= flagCategorical
			nd.threshold = math.Float32frombits(uint32(len(m.cats)))
			m.cats = append(m.cats, catSet{off: uint32(len(m.bits)), n: uint32(len(r.cats))})
			m.bits = append(m.bits, r.cats...)
		}
		m.nodes = append(m.nodes, nd)
		m.value = append(m.value, 0)
	}
	// Cover fractions top-down, expected values bottom-up: children always
	// come after their parent in breadth-first order.
	m.frac = append(m.frac, make([]float64, len(order))...)
	m.mean = append(m.mean, make([]float64, len(order))...)
	m.frac[base] = 1
	for q := range order {
		nd := m.nodes[base+int32(q)]
		if nd.left == base+int32(q) {
			continue
		}
		cl, cr := cover[nd.left-base], cover[nd.right-base]
		c := cover[q]
		if !(c > 0) {
			c = cl + cr
		}
		fl, fr := 0.5, 0.5
		if c > 0 {
			fl, fr = cl/c, cr/c
		}
		m.frac[nd.left], m.frac[nd.right] = fl, fr
	}
	for q := len(order) - 1; q >= 0; q-- {
		i := base + int32(q)
		nd := m.nodes[i]
		if nd.left == i {
			m.mean[i] = m.value[i]
		} else {
			m.mean[i] = m.frac[nd.left]*m.mean[nd.left] + m.frac[nd.right]*m.mean[nd.right]
		}
	}
	m.trees = append(m.trees, treeInfo{root: base, depth: depth, group: int32(group)})
	m.maxDepth = max(m.maxDepth, int(depth))
	m.maxNodes = max(m.maxNodes, len(order))
	return nil
}

// categoryBits turns a list of categories into a bitset.
func categoryBits(cats []int64) ([]uint32, error) {
	hi := int64(-1)
	for _, c := range cats {
		if c < 0 || c >= 1<<24 {
			return nil, fmt.Errorf("category %d is outside [0, 16777216)", c)
		}
		hi = max(hi, c)
	}
	bits := make([]uint32, hi/32+1)
	for _, c := range cats {
		bits[c/32] |= 1 << (c % 32)
	}
	return bits, nil
}
