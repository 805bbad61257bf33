package tree

import "math/bits"

// Per-leaf TreeSHAP tables (the idea of Fast TreeSHAP v2, Yang 2021, with
// tables about n times smaller).
//
// A leaf's contributions (see shap.go) depend on the tree through the zero
// fractions z_j of its n distinct path features and on the row only
// through the set O of those features the row follows (o_j = 1). Every
// feature outside O gets the same value, A(O) = -v * prod_{j not in O} z_j
// * phi(O), where phi(U) = sum over the subsets S of U of
// |S|!(n-|S|-1)!/n! * prod_{j in U\S} z_j. A feature i in O gets
// v * (1 - z_i) * prod_{j not in O} z_j * phi(O\{i}) = r_i * A(O\{i})
// with r_i = (z_i - 1) / z_i. So each leaf keeps A for its 2^n sets,
// computed once with the walk's own per-leaf arithmetic (shapWalk.leaf),
// and r. A set is a bitmask over the positions of a path's distinct
// features in order of first appearance from the root, so a path keeps its
// prefix's positions.
//
// A row then costs one step per split and n products per leaf: the
// splits, parents first, send their set to the child the row takes and the
// set without the split's feature to the other (the root's set is all
// ones), and each leaf adds coef * A(set without the feature) for each of
// its features, coef being r for a followed feature and 1 for another.
//
// Two leaves below a split on a feature new on their path (at position n)
// share one table: they have the same z and r for the n features above,
// so with the split's set Q and the row's direction d, a feature j < n
// gets r_j * B(Q\{j}, d) or B(Q, d), where B(Q, d) is the sum of the
// leaves' A for the sets the two children get, and the split's feature
// gets K(Q, d), the sum of what the leaves give it. That is 4*2^n values,
// as for the two leaves, and n+1 products instead of 2n+2.
//
// A leaf with n features needs 2^n+2n values, so only trees whose paths
// have at most maxTablePath distinct features get tables, and only while a
// model's tables stay within maxTableBytes (trees are taken in order; one
// that does not fit is skipped and the next tried). Dividing by z needs
// every z of the tree to be at least minTableZero (a cover share of 0
// would divide by zero, a tiny one could underflow A); a pair's own z is
// not divided by. Other trees use the walk. The tables are built on the
// first Contributions call.

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
	tab   []float64  // per leaf A, per pair B and K; then [1, r] per position
	feats []int32    // per leaf or pair: its features by position
}

// shapTree is one tree's share of the tables; a tree without them has
// none.
type shapTree struct {
	fast   bool
	splits []tableSplit // splits other than pairs', parents first
	pairs  []tableLeaf  // splits on a new feature with two leaves
	leaves []tableLeaf  // leaves outside pairs
}

// tableSplit is a split of a tabled tree.
type tableSplit struct {
	node int32  // node index relative to the tree's root
	bit  uint32 // bit of the split's feature's position on its path
}

// tableLeaf is a leaf of a tabled tree, or a pair: a split on a feature
// new on its path whose children are both leaves.
type tableLeaf struct {
	node int32  // the leaf or the pair's split, relative to the root
	n    uint32 // distinct features on the leaf's path, above the pair's split
	tab  uint32 // its table in tab[tab:], then its coefficients
	feat uint32 // its features in feats[feat:], then the pair's split's
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
	// A pair's table holds, for each direction d, B(., d) then K(., d).
	for _, p := range st.pairs {
		i := root + p.node
		next, slow := numericStep(nodes, i, x, 0)
		if slow != 0 {
			next = m.slowStep(i, x, 0)
		}
		n := p.n
		set := mask[p.node] & (1<<n - 1)
		tab := sh.tab[p.tab : p.tab+4<<n+2*n]
		bk := tab[uint32(next-nodes[i].left)<<(n+1):][:2<<n]
		sh.add(phi, p, set, bk[:1<<n], tab[4<<n:])
		phi[sh.feats[p.feat+n]] += bk[1<<n+set]
	}
	for _, l := range st.leaves {
		n := l.n
		tab := sh.tab[l.tab : l.tab+1<<n+2*n]
		sh.add(phi, l, mask[l.node]&(1<<n-1), tab[:1<<n], tab[1<<n:])
	}
}

// add adds coef * a[set without k] to the feature at each position k of
// leaf or pair l, coef being 1 or r by whether set holds k.
func (sh *shapTables) add(phi []float64, l tableLeaf, set uint32, a, coef []float64) {
	for k, f := range sh.feats[l.feat : l.feat+l.n] {
		phi[f] += coef[2*k+int(set>>k&1)] * a[set&^(1<<k)]
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
		other:  make([]float64, maxTablePath),
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
			s0, p0, l0 := len(b.splits), len(b.pairs), len(b.leaves)
			b.tree(t)
			st.splits, st.pairs, st.leaves = b.splits[s0:], b.pairs[p0:], b.leaves[l0:]
		}
	}
	// The trees' slices share one array each, cut once complete.
	splits, pairs, leaves := b.splits, b.pairs, b.leaves
	for t := range sh.trees {
		st := &sh.trees[t]
		st.splits, splits = splits[:len(st.splits):len(st.splits)], splits[len(st.splits):]
		st.pairs, pairs = pairs[:len(st.pairs):len(st.pairs)], pairs[len(st.pairs):]
		st.leaves, leaves = leaves[:len(st.leaves):len(st.leaves)], leaves[len(st.leaves):]
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
	other  []float64  // a pair's left leaf's values, maxTablePath long
	budget int        // table values allowed
	used   int        // table values taken

	splits        []tableSplit
	pairs, leaves []tableLeaf
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
		if l, r := nd.left, nd.right; m.nodes[l].left == l && m.nodes[r].left == r {
			return b.pair(i, n)
		}
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

// take reserves a table of size values, followed by the coefficients of
// b.path[:n], for node i. When filling, it appends the table to refs with
// the features of b.path[:feats], writes the coefficients and returns the
// table to fill (else nil). It reports false if the budget or a z does
// not allow the table.
func (b *tableBuilder) take(i int32, n, feats, size int, refs *[]tableLeaf) ([]float64, bool) {
	path := b.path[:n]
	if size+2*n > b.budget-b.used {
		return nil, false
	}
	for _, e := range path {
		if !(e.zero >= minTableZero) {
			return nil, false
		}
	}
	off := b.used
	b.used += size + 2*n
	if !b.fill {
		return nil, true
	}
	*refs = append(*refs, tableLeaf{node: i - b.root, n: uint32(n), tab: uint32(off), feat: uint32(len(b.sh.feats))})
	for _, e := range b.path[:feats] {
		b.sh.feats = append(b.sh.feats, e.feature)
	}
	coef := b.sh.tab[off+size:][:2*n]
	for k, e := range path {
		coef[2*k], coef[2*k+1] = 1, (e.zero-1)/e.zero
	}
	return b.sh.tab[off:][:size], true
}

// leaf takes (and fills) the table of leaf i, reached through b.path[:n]:
// A(U) for every set U but the full one (never looked up), which is what
// shapWalk.leaf gives any feature outside U.
func (b *tableBuilder) leaf(i int32, n int) bool {
	a, ok := b.take(i, n, n, 1<<n, &b.leaves)
	for set := range len(a) - 1 {
		a[set] = b.values(i, n, set)[bits.TrailingZeros(^uint(set))]
	}
	return ok
}

// pair takes (and fills) the table of split i, reached through b.path[:n],
// whose feature (at position n) is new and whose children are leaves.
// For each direction d and set Q of the n features above, B(Q, d) is what
// the two leaves give a feature outside Q and K(Q, d) what they give the
// split's feature.
func (b *tableBuilder) pair(i int32, n int) bool {
	m := b.m
	l, r := m.nodes[i].left, m.nodes[i].right
	tab, ok := b.take(i, n, n+1, 4<<n, &b.pairs)
	for d := range len(tab) >> (n + 1) {
		bk := tab[d<<(n+1):][:2<<n]
		for set := range 1 << n {
			// The row follows the split's feature to the leaf it takes.
			b.path[n].zero = m.frac[l]
			vl := b.other[:n+1]
			copy(vl, b.values(l, n+1, set|(1-d)<<n))
			b.path[n].zero = m.frac[r]
			vr := b.values(r, n+1, set|d<<n)
			if set != 1<<n-1 {
				c := bits.TrailingZeros(^uint(set))
				bk[set] = vl[c] + vr[c]
			}
			bk[1<<n+set] = vl[n] + vr[n]
		}
	}
	return ok
}

// values returns what shapWalk.leaf gives each position of leaf i,
// reached through b.path[:n], when the row follows the features in set.
func (b *tableBuilder) values(i int32, n, set int) []float64 {
	pos := b.pos[:n]
	for k, e := range b.path[:n] {
		pos[k] = pathElem{feature: int32(k), zero: e.zero, one: float64(set >> k & 1)}
	}
	b.w.phi = b.w.phi[:n]
	clear(b.w.phi)
	b.w.leaf(pos, b.m.value[i])
	return b.w.phi
}
