package tree

import (
	"fmt"
	"math"
)

// xgboostTrees adds the trees of a gbtree model object; weights are dart's
// weight_drop (nil for gbtree).
func xgboostTrees(b *builder, model any, weights []float32) error {
	tv, err := member(model, "gbtree model", "trees")
	if err != nil {
		return err
	}
	trees, ok := tv.([]any)
	if !ok {
		return fmt.Errorf("trees is not an array")
	}
	iv, err := member(model, "gbtree model", "tree_info")
	if err != nil {
		return err
	}
	groups, err := asInts(iv, "tree_info", 0, int64(b.m.numOutputs-1))
	if err != nil {
		return err
	}
	if len(groups) != len(trees) {
		return fmt.Errorf("tree_info has %d entries for %d trees", len(groups), len(trees))
	}
	if weights != nil && len(weights) != len(trees) {
		return fmt.Errorf("weight_drop has %d entries for %d trees", len(weights), len(trees))
	}
	for i, t := range trees {
		nodes, err := xgboostTree(t)
		if err != nil {
			return fmt.Errorf("tree %d: %w", i, err)
		}
		w := 1.0
		if weights != nil {
			w = float64(weights[i])
		}
		if err := b.addTree(nodes, int(groups[i]), w); err != nil {
			return fmt.Errorf("tree %d: %w", i, err)
		}
	}
	return nil
}

// xgboostTree reads one RegTree object.
func xgboostTree(t any) ([]rawNode, error) {
	ints := func(key string, lo, hi int64, optional bool) ([]int64, error) {
		v, err := optMember(t, "tree", key)
		if err != nil {
			return nil, err
		}
		if v == nil {
			if optional {
				return nil, nil
			}
			return nil, fmt.Errorf("tree has no %q", key)
		}
		return asInts(v, key, lo, hi)
	}
	floats := func(key string) ([]float32, error) {
		v, err := member(t, "tree", key)
		if err != nil {
			return nil, err
		}
		return asFloat32s(v, key)
	}
	if p, _ := optMember(t, "tree", "tree_param"); p != nil {
		if v, _ := optMember(p, "tree_param", "size_leaf_vector"); v != nil {
			if n, err := asInt(v, "size_leaf_vector", 0, math.MaxInt32); err != nil || n > 1 {
				return nil, fmt.Errorf("vector-leaf (multi-target) trees are not supported")
			}
		}
	}
	left, err := ints("left_children", -1, math.MaxInt32, false)
	if err != nil {
		return nil, err
	}
	n := len(left)
	right, err := ints("right_children", -1, math.MaxInt32, false)
	if err != nil {
		return nil, err
	}
	feature, err := ints("split_indices", 0, math.MaxInt32, false)
	if err != nil {
		return nil, err
	}
	defaultLeft, err := ints("default_left", 0, 1, false)
	if err != nil {
		return nil, err
	}
	cond, err := floats("split_conditions")
	if err != nil {
		return nil, err
	}
	hess, err := floats("sum_hessian")
	if err != nil {
		return nil, err
	}
	splitType, err := ints("split_type", 0, 1, true)
	if err != nil {
		return nil, err
	}
	for key, l := range map[string]int{"right_children": len(right), "split_indices": len(feature),
		"default_left": len(defaultLeft), "split_conditions": len(cond), "sum_hessian": len(hess)} {
		if l != n {
			return nil, fmt.Errorf("%s has %d entries, left_children %d", key, l, n)
		}
	}
	if splitType != nil && len(splitType) != n {
		return nil, fmt.Errorf("split_type has %d entries, left_children %d", len(splitType), n)
	}
	nodes := make([]rawNode, n)
	for i := range nodes {
		nodes[i] = rawNode{
			left:      left[i],
			right:     right[i],
			feature:   feature[i],
			threshold: cond[i],
			value:     float64(cond[i]),
			cover:     float64(hess[i]),
		}
		if defaultLeft[i] != 0 {
			nodes[i].flags = flagDefaultLeft
		}
	}
	if err := xgboostCategories(t, nodes, splitType); err != nil {
		return nil, err
	}
	return nodes, nil
}

// xgboostCategories attaches the category sets of categorical splits.
func xgboostCategories(t any, nodes []rawNode, splitType []int64) error {
	n := int64(len(nodes))
	get := func(key string, lo, hi int64) ([]int64, error) {
		v, err := optMember(t, "tree", key)
		if err != nil || v == nil {
			return nil, err
		}
		return asInts(v, key, lo, hi)
	}
	catNodes, err := get("categories_nodes", 0, n-1)
	if err != nil {
		return err
	}
	segments, err := get("categories_segments", 0, math.MaxInt64)
	if err != nil {
		return err
	}
	sizes, err := get("categories_sizes", 0, math.MaxInt64)
	if err != nil {
		return err
	}
	cats, err := get("categories", 0, 1<<24-1)
	if err != nil {
		return err
	}
	if len(segments) != len(catNodes) || len(sizes) != len(catNodes) {
		return fmt.Errorf("categories_nodes, categories_segments and categories_sizes differ in length (%d, %d, %d)",
			len(catNodes), len(segments), len(sizes))
	}
	for k, nid := range catNodes {
		seg, size := segments[k], sizes[k]
		if seg > int64(len(cats)) || size > int64(len(cats))-seg {
			return fmt.Errorf("categories segment %d (offset %d, size %d) is outside the %d categories", k, seg, size, len(cats))
		}
		if splitType == nil || splitType[nid] != 1 {
			return fmt.Errorf("node %d has categories but is not a categorical split", nid)
		}
		bits, err := categoryBits(cats[seg : seg+size])
		if err != nil {
			return fmt.Errorf("node %d: %w", nid, err)
		}
		nodes[nid].cats = bits
	}
	for i, st := range splitType {
		if st == 1 && nodes[i].cats == nil && nodes[i].left != -1 {
			return fmt.Errorf("categorical node %d has no categories", i)
		}
	}
	return nil
}
