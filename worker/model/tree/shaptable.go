package tree

// Per-leaf TreeSHAP tables (the idea of Fast TreeSHAP v2, Yang 2021, with
// tables about n times smaller).
//
// A leaf's contributions (see shap.go) depend on the tree through the zero
// fractions z_j of its n distinct path features and on the row only
// through the set O of those features the row follows (o_j = 1). Every
// feature outside O gets the same value, A(O) = -v * prod_{j not in O} z_j
// * phi(O), where phi(U) = sum over the subsets S of U of
// |S|!(n-|S|-1)!/n! * prod_{j in U\S} z_j. A feature i in O gets v * (1 - z_i) * prod_{j not
// in O} z_j * phi(O\{i}) = r_i * A(O\{i}) with r_i = (z_i - 1) / z_i. So
// each leaf keeps A for its 2^n sets, computed once with the walk's own
// per-leaf arithmetic (shapWalk.leaf), and r. A set is a bitmask over the
// positions of a path's distinct features in order of first appearance
// from the root, so a path keeps its prefix's positions.
//
// A row then costs one step per split and n products per leaf: the
// splits, parents first, send their set to the child the row takes and the
// set without the split's feature to the other (the root's set is all
// ones), and each leaf adds coef * A(set without the feature) for each of
// its features, coef being r for a followed feature and 1 for another.
//
// A leaf with n features needs 2^n+2n values, so only trees whose paths
// have at most maxTablePath distinct features get tables, and only while a
// model's tables stay within maxTableBytes (trees are taken in order; one
// that does not fit is skipped and the next tried). Dividing by z needs
// every z of the tree to be at least minTableZero (a cover share of 0
// would divide by zero, a tiny one could underflow A). Other trees use the
// walk. The tables are built on the first Contributions call.

const (
	// maxTablePath is the most distinct features on a tabled tree's
	// paths: a leaf then needs at most 4096+24 values (32.2 KiB).
	maxTablePath = 12
	// maxTableBytes caps the table values of one model.
	maxTableBytes = 64 << 20
	// minTableZero is the least z of a tabled tree: A stays above
	// minTableZero^maxTablePath = 2^-768, far from float64 underflow.
	minTableZero = 0x1p-64
)

// shapTables holds the tables of one model.
type shapTables struct {
	trees []shapTree // per tree, as m.trees
	tab   []float64  // per leaf: A by set, then [1, r] per position
	feats []int32    // per leaf: its features by position
}

// shapTree is one tree's share of the tables; a tree without them has
// neither splits nor leaves.
type shapTree struct {
	fast   bool
	splits []tableSplit // parents first
	leaves []tableLeaf
}

// tableSplit is a split of a tabled tree.
type tableSplit struct {
	node int32  // node index relative to the tree's root
	bit  uint32 // bit of the split's feature's position on its path
}

// tableLeaf is a leaf of a tabled tree.
type tableLeaf struct {
	node int32  // node index relative to the tree's root
	n    uint32 // distinct features on its path
	tab  uint32 // its A in tab[tab:], then its coefficients
	feat uint32 // its features in feats[feat:]
}

// shapTables returns the model's tables, building them on first use.
func (m *Model) shapTables() *shapTables {
	m.shapOnce.Do(func() { m.shap = m.buildShapTables(maxTableBytes) })
	return m.shap
}

// addTree adds the contributions of tree t for row x to phi. mask is
// scratch of at least the tree's size.
func (sh *shapTables) addTree(m *Model, t int, x []float32, phi []float64, mask []uint32) {
	st := &sh.trees[t]
	root := m.trees[t].root
	mask[0] = ^uint32(0)
	nodes := m.nodes
	for _, s := range st.splits {
		i := root + s.node
		next, slow := numericStep(nodes, i, x, 0)
		if slow != 0 {
			next = m.slowStep(i, x, 0)
		}
		// right is 1 if the row goes right; the other child loses the bit.
		l := nodes[i].left
		right := uint32(next - l)
		set := mask[s.node]
		l -= root
		mask[l] = set &^ (s.bit & -right)
		mask[l+1] = set &^ (s.bit & (right - 1))
	}
	for _, l := range st.leaves {
		n := l.n
		set := mask[l.node] & (1<<n - 1)
		tab := sh.tab[l.tab : l.tab+1<<n+2*n]
		a, coef := tab[:1<<n], tab[1<<n:]
		for k, f := range sh.feats[l.feat : l.feat+n] {
			phi[f] += coef[2*k+int(set>>k&1)] * a[set&^(1<<k)]
		}
	}
}

// buildShapTables builds the tables of every tree that qualifies, within
// maxBytes of table values: a first pass finds those trees and the size,
// a second fills the tables.
func (m *Model) buildShapTables(maxBytes int) *shapTables {
	sh := &shapTables{trees: make([]shapTree, len(m.trees))}
	b := tableBuilder{
		m: m, sh: sh,
		path:   make([]pathElem, maxTablePath),
		pos:    make([]pathElem, maxTablePath),
		w:      shapWalk{g: make([]float64, maxTablePath/2+1), phi: make([]float64, maxTablePath)},
		budget: maxBytes / 8,
	}
	for t := range sh.trees {
		used := b.used
		sh.trees[t].fast = b.tree(t)
		if !sh.trees[t].fast {
			b.used = used
		}
	}
	sh.tab = make([]float64, b.used)
	b.used, b.fill = 0, true
	for t := range sh.trees {
		if st := &sh.trees[t]; st.fast {
			s0, l0 := len(b.splits), len(b.leaves)
			b.tree(t)
			st.splits, st.leaves = b.splits[s0:], b.leaves[l0:]
		}
	}
	// The trees' slices share one array each, cut once complete.
	splits, leaves := b.splits, b.leaves
	for t := range sh.trees {
		st := &sh.trees[t]
		st.splits = splits[:len(st.splits):len(st.splits)]
		st.leaves = leaves[:len(st.leaves):len(st.leaves)]
		splits, leaves = splits[len(st.splits):], leaves[len(st.leaves):]
	}
	return sh
}

// tableBuilder walks trees to size (fill false) or lay out and fill (fill
// true) their tables.
type tableBuilder struct {
	m      *Model
	sh     *shapTables
	fill   bool
	root   int32      // tree being walked
	path   []pathElem // distinct features on the path, maxTablePath long
	pos    []pathElem // the path by position, for shapWalk.leaf
	w      shapWalk   // phi: maxTablePath long
	budget int        // table values allowed
	used   int        // table values taken

	splits []tableSplit
	leaves []tableLeaf
}

// tree walks tree t and reports whether it qualifies.
func (b *tableBuilder) tree(t int) bool {
	b.root = b.m.trees[t].root
	return b.visit(b.root, 0)
}

// visit walks node i, reached through the n distinct features in
// b.path[:n], and its subtree. It reports false if the tree does not
// qualify for tables.
func (b *tableBuilder) visit(i int32, n int) bool {
	m := b.m
	nd := &m.nodes[i]
	if nd.left == i {
		return b.leaf(i, n)
	}
	feat := int32(nd.feature & featureMask)
	k := 0
	for k < n && b.path[k].feature != feat {
		k++
	}
	next := n
	if k == n {
		if n == maxTablePath {
			return false
		}
		b.path[n] = pathElem{feature: feat, zero: 1}
		next++
	}
	if b.fill {
		b.splits = append(b.splits, tableSplit{node: i - b.root, bit: 1 << k})
	}
	// The same products, in the same order, as shapWalk.visit forms.
	z := b.path[k].zero
	b.path[k].zero = z * m.frac[nd.left]
	ok := b.visit(nd.left, next)
	b.path[k].zero = z * m.frac[nd.right]
	ok = ok && b.visit(nd.right, next)
	b.path[k].zero = z
	return ok
}

// leaf takes (and fills) the table of leaf i, reached through b.path[:n].
// It reports false if the budget or a z does not allow it.
func (b *tableBuilder) leaf(i int32, n int) bool {
	size := 1<<n + 2*n
	if size > b.budget-b.used {
		return false
	}
	path := b.path[:n]
	for _, e := range path {
		if !(e.zero >= minTableZero) {
			return false
		}
	}
	off := b.used
	b.used += size
	if !b.fill {
		return true
	}
	b.leaves = append(b.leaves, tableLeaf{node: i - b.root, n: uint32(n), tab: uint32(off), feat: uint32(len(b.sh.feats))})
	a := b.sh.tab[off:][:1<<n]
	coef := b.sh.tab[off+1<<n:][:2*n]
	for k, e := range path {
		b.sh.feats = append(b.sh.feats, e.feature)
		coef[2*k], coef[2*k+1] = 1, (e.zero-1)/e.zero
	}
	// A(U) is what shapWalk.leaf gives any feature outside U; U = all
	// features is never looked up.
	pos := b.pos[:n]
	for set := range len(a) - 1 {
		cold := 0
		for k, e := range path {
			pos[k] = pathElem{feature: int32(k), zero: e.zero, one: float64(set >> k & 1)}
			if set>>k&1 == 0 {
				cold = k
			}
		}
		b.w.phi = b.w.phi[:n]
		clear(b.w.phi)
		b.w.leaf(pos, b.m.value[i])
		a[set] = b.w.phi[cold]
	}
	return true
}
