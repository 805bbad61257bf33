package tree

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// LoadLightGBM reads a LightGBM text model (model.txt, header version=v3 or
// v4; v2 files share the layout and load too). Leaf values in the file
// already include shrinkage, so shrinkage= lines are informational. Linear
// trees (is_linear=1) are refused.
func LoadLightGBM(r io.Reader) (*Model, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read lightgbm model: %w", err)
	}
	m, err := lightGBMModel(string(data))
	if err != nil {
		return nil, fmt.Errorf("load lightgbm model: %w", err)
	}
	return m, nil
}

// LightGBM decision_type bits.
const (
	lgbCategorical = 1
	lgbDefaultLeft = 2
	lgbMissingZero = 1 // (decision_type >> 2) & 3
	lgbMissingNaN  = 2
)

// section is one block of key=value lines; bare lines (average_output) map
// to "".
type section map[string]string

func lightGBMModel(text string) (*Model, error) {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	if end := strings.Index(text, "\nend of trees"); end >= 0 {
		text = text[:end]
	}
	header := section{}
	var trees []section
	cur := header
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		key, val, _ := strings.Cut(line, "=")
		if key == "Tree" {
			n, err := strconv.Atoi(val)
			if err != nil || n != len(trees) {
				return nil, fmt.Errorf("line %d: tree header %q out of sequence", i+1, line)
			}
			cur = section{}
			trees = append(trees, cur)
			continue
		}
		cur[key] = val
	}
	if _, ok := header["tree"]; !ok {
		return nil, errors.New("missing the leading \"tree\" line; not a LightGBM text model")
	}
	switch v := header["version"]; v {
	case "v2", "v3", "v4":
	default:
		return nil, fmt.Errorf("model version %q is not supported (want v3 or v4)", v)
	}
	maxFeature, err := headerInt(header, "max_feature_idx", -1, maxFeatures-1)
	if err != nil {
		return nil, err
	}
	numClass, err := headerInt(header, "num_class", 1, 1<<16)
	if err != nil {
		return nil, err
	}
	perIter := numClass
	if _, ok := header["num_tree_per_iteration"]; ok {
		if perIter, err = headerInt(header, "num_tree_per_iteration", 1, 1<<16); err != nil {
			return nil, err
		}
	}
	objective := header["objective"]
	b, err := newBuilder(objective, maxFeature+1, perIter)
	if err != nil {
		return nil, err
	}
	if err := lightGBMObjective(b.m, objective); err != nil {
		return nil, err
	}
	if names := strings.Fields(header["feature_names"]); len(names) == maxFeature+1 {
		b.m.names = names
	}
	if len(trees)%perIter != 0 {
		return nil, fmt.Errorf("%d trees is not a whole number of iterations of %d", len(trees), perIter)
	}
	weight := 1.0
	if _, ok := header["average_output"]; ok && len(trees) > 0 {
		weight = float64(perIter) / float64(len(trees))
	}
	for i, s := range trees {
		nodes, err := lightGBMTree(s)
		if err != nil {
			return nil, fmt.Errorf("tree %d: %w", i, err)
		}
		if err := b.addTree(nodes, i%perIter, weight); err != nil {
			return nil, fmt.Errorf("tree %d: %w", i, err)
		}
	}
	return b.m, nil
}

func headerInt(s section, key string, lo, hi int) (int, error) {
	v, ok := s[key]
	if !ok {
		return 0, fmt.Errorf("header has no %s", key)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("header %s=%q is not an integer in [%d, %d]", key, v, lo, hi)
	}
	return n, nil
}

// lightGBMObjective sets the transform from an objective line such as
// "binary sigmoid:1" or "multiclass num_class:3".
func lightGBMObjective(m *Model, objective string) error {
	fields := strings.Fields(objective)
	if len(fields) == 0 {
		return errors.New("header has no objective")
	}
	params := map[string]string{}
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, ":")
		params[k] = v
	}
	if _, ok := params["sqrt"]; ok {
		return fmt.Errorf("objective %q: sqrt-transformed labels are not supported", objective)
	}
	switch fields[0] {
	case "binary", "multiclassova", "cross_entropy", "xentropy":
		m.transform = transformSigmoid
		if s, ok := params["sigmoid"]; ok {
			k, err := strconv.ParseFloat(s, 64)
			if err != nil || !(k > 0) || math.IsInf(k, 0) {
				return fmt.Errorf("objective %q: bad sigmoid %q", objective, s)
			}
			m.sigmoidK = k
		}
	case "multiclass", "softmax":
		m.transform = transformSoftmax
	case "regression", "regression_l2", "regression_l1", "l1", "l2", "mse", "mae", "rmse",
		"huber", "fair", "quantile", "mape", "lambdarank", "rank_xendcg", "custom", "none":
		m.transform = transformIdentity
	case "poisson", "gamma", "tweedie":
		m.transform = transformExp
	default:
		return fmt.Errorf("objective %q is not supported", objective)
	}
	return nil
}

// lightGBMTree converts one Tree= block. LightGBM numbers internal nodes
// 0..L-2 and leaves separately (a child c < 0 is leaf ^c); the raw nodes
// put leaf j at L-1+j.
func lightGBMTree(s section) ([]rawNode, error) {
	if s["is_linear"] == "1" {
		return nil, errors.New("linear trees are not supported")
	}
	leaves, err := headerInt(s, "num_leaves", 1, 1<<24)
	if err != nil {
		return nil, err
	}
	values, err := lgbFloats(s, "leaf_value", leaves, true)
	if err != nil {
		return nil, err
	}
	leafCover, err := lgbCover(s, "leaf_count", "leaf_weight", leaves)
	if err != nil {
		return nil, err
	}
	if leaves == 1 {
		return []rawNode{{left: -1, right: -1, value: values[0], cover: leafCover[0]}}, nil
	}
	n := leaves - 1
	feature, err := lgbInts(s, "split_feature", n)
	if err != nil {
		return nil, err
	}
	threshold, err := lgbFloats(s, "threshold", n, false)
	if err != nil {
		return nil, err
	}
	decision, err := lgbInts(s, "decision_type", n)
	if err != nil {
		return nil, err
	}
	left, err := lgbInts(s, "left_child", n)
	if err != nil {
		return nil, err
	}
	right, err := lgbInts(s, "right_child", n)
	if err != nil {
		return nil, err
	}
	cover, err := lgbCover(s, "internal_count", "internal_weight", n)
	if err != nil {
		return nil, err
	}
	cats, err := lgbCategories(s)
	if err != nil {
		return nil, err
	}
	child := func(c int64) (int64, error) {
		if c < 0 {
			c = ^c + int64(n)
		}
		if c < 0 || c >= int64(n+leaves) {
			return 0, fmt.Errorf("child %d is outside the tree", c)
		}
		return c, nil
	}
	nodes := make([]rawNode, n+leaves)
	for i := range n {
		l, err := child(left[i])
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		r, err := child(right[i])
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		nd := rawNode{left: l, right: r, feature: feature[i], cover: cover[i]}
		dt := decision[i]
		if dt < 0 || dt > 15 {
			return nil, fmt.Errorf("node %d: decision_type %d is invalid", i, dt)
		}
		if dt&lgbCategorical != 0 {
			idx := threshold[i]
			if idx != math.Trunc(idx) || idx < 0 || idx >= float64(len(cats)) {
				return nil, fmt.Errorf("node %d: categorical threshold %v is not a set index below %d", i, idx, len(cats))
			}
			// LightGBM sends a category in the set left and NaN or a
			// negative value right; the engine sends set members right,
			// so swap the children and default to the (new) left side.
			nd.left, nd.right = r, l
			nd.cats = cats[int(idx)]
			nd.flags = flagDefaultLeft | flagCatTrunc
		} else {
			nd.threshold = lessBound(threshold[i])
			switch (dt >> 2) & 3 {
			case lgbMissingZero:
				nd.flags = flagZeroMissing
				if dt&lgbDefaultLeft != 0 {
					nd.flags |= flagDefaultLeft
				}
			case lgbMissingNaN:
				if dt&lgbDefaultLeft != 0 {
					nd.flags = flagDefaultLeft
				}
			default: // None: NaN is read as 0
				if 0 < nd.threshold {
					nd.flags = flagDefaultLeft
				}
			}
		}
		nodes[i] = nd
	}
	for j := range leaves {
		nodes[n+j] = rawNode{left: -1, right: -1, value: values[j], cover: leafCover[j]}
	}
	return nodes, nil
}

// lessBound turns LightGBM's "left if x <= t" on doubles into the engine's
// "left if x < bound" on float32 inputs: bound is the next float32 above the
// largest float32 not exceeding t, so both rules agree for every finite
// float32 x.
func lessBound(t float64) float32 {
	f := float32(t)
	if float64(f) > t {
		f = math.Nextafter32(f, float32(math.Inf(-1)))
	}
	return math.Nextafter32(f, float32(math.Inf(1)))
}

func lgbFields(s section, key string, n int) ([]string, error) {
	v, ok := s[key]
	if !ok {
		return nil, fmt.Errorf("tree has no %s", key)
	}
	f := strings.Fields(v)
	if len(f) != n {
		return nil, fmt.Errorf("%s has %d values, want %d", key, len(f), n)
	}
	return f, nil
}

func lgbInts(s section, key string, n int) ([]int64, error) {
	f, err := lgbFields(s, key, n)
	if err != nil {
		return nil, err
	}
	out := make([]int64, n)
	for i, v := range f {
		if out[i], err = strconv.ParseInt(v, 10, 32); err != nil {
			return nil, fmt.Errorf("%s[%d] = %q is not a 32-bit integer", key, i, v)
		}
	}
	return out, nil
}

func lgbFloats(s section, key string, n int, finite bool) ([]float64, error) {
	f, err := lgbFields(s, key, n)
	if err != nil {
		return nil, err
	}
	out := make([]float64, n)
	for i, v := range f {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, fmt.Errorf("%s[%d] = %q is not a number", key, i, v)
		}
		if finite && (math.IsInf(x, 0) || math.IsNaN(x)) {
			return nil, fmt.Errorf("%s[%d] = %q is not finite", key, i, v)
		}
		out[i] = x
	}
	return out, nil
}

// lgbCover reads node covers: data counts (what LightGBM's own TreeSHAP
// uses), else hessian sums, else zeros.
func lgbCover(s section, count, weight string, n int) ([]float64, error) {
	for _, key := range []string{count, weight} {
		if _, ok := s[key]; ok {
			return lgbFloats(s, key, n, true)
		}
	}
	return make([]float64, n), nil
}

// lgbCategories reads the tree's category bitsets (cat_boundaries into
// cat_threshold words).
func lgbCategories(s section) ([][]uint32, error) {
	numCat := 0
	if v, ok := s["num_cat"]; ok {
		var err error
		if numCat, err = strconv.Atoi(v); err != nil || numCat < 0 || numCat > 1<<24 {
			return nil, fmt.Errorf("num_cat=%q is invalid", v)
		}
	}
	if numCat == 0 {
		return nil, nil
	}
	bounds, err := lgbInts(s, "cat_boundaries", numCat+1)
	if err != nil {
		return nil, err
	}
	words := strings.Fields(s["cat_threshold"])
	if bounds[0] != 0 || bounds[numCat] != int64(len(words)) {
		return nil, fmt.Errorf("cat_boundaries do not span the %d cat_threshold words", len(words))
	}
	bits := make([]uint32, len(words))
	for i, w := range words {
		v, err := strconv.ParseUint(w, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("cat_threshold[%d] = %q is not a 32-bit word", i, w)
		}
		bits[i] = uint32(v)
	}
	sets := make([][]uint32, numCat)
	for k := range sets {
		lo, hi := bounds[k], bounds[k+1]
		if lo > hi || hi > int64(len(bits)) {
			return nil, fmt.Errorf("cat_boundaries are not increasing within the %d words at %d", len(bits), k)
		}
		sets[k] = bits[lo:hi:hi]
	}
	return sets, nil
}
