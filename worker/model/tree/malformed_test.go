package tree

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"testing"
)

// minimalXGB is a one-split regression model: x0 < 0.5 (missing left)
// gives 1, else 2, plus base_score 0.5.
const minimalXGB = `{"learner":{"learner_model_param":{"base_score":"5E-1","num_class":"0","num_feature":"2"},
"objective":{"name":"reg:squarederror"},"gradient_booster":{"name":"gbtree","model":{"tree_info":[0],
"trees":[{"left_children":[1,-1,-1],"right_children":[2,-1,-1],"split_indices":[0,0,0],
"split_conditions":[0.5,1,2],"default_left":[1,0,0],"sum_hessian":[2,1,1]}]}}}}`

func TestMinimalXGBoost(t *testing.T) {
	t.Parallel()
	m, err := LoadXGBoostJSON(strings.NewReader(minimalXGB))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		x    float32
		want float64
	}{{0.49, 1.5}, {0.5, 2.5}, {nan, 1.5}} {
		var out [1]float64
		m.PredictRow([]float32{tt.x, 0}, out[:])
		if out[0] != tt.want {
			t.Errorf("x0 = %v: prediction %v, want %v", tt.x, out[0], tt.want)
		}
	}
}

func TestMalformedXGBoost(t *testing.T) {
	t.Parallel()
	// A chain of 300 splits: node 2j has a leaf at 2j+1 and continues at 2j+2.
	const n = 601
	chainLeft := make([]string, n)
	chainRight := make([]string, n)
	for i := range n {
		chainLeft[i], chainRight[i] = "-1", "-1"
		if i%2 == 0 && i+2 < n {
			chainLeft[i], chainRight[i] = strconv.Itoa(i+1), strconv.Itoa(i+2)
		}
	}
	zeros := strings.TrimSuffix(strings.Repeat("0,", n), ",")
	deep := strings.NewReplacer(
		`"left_children":[1,-1,-1]`, `"left_children":[`+strings.Join(chainLeft, ",")+`]`,
		`"right_children":[2,-1,-1]`, `"right_children":[`+strings.Join(chainRight, ",")+`]`,
		`"split_indices":[0,0,0]`, `"split_indices":[`+zeros+`]`,
		`"split_conditions":[0.5,1,2]`, `"split_conditions":[`+zeros+`]`,
		`"default_left":[1,0,0]`, `"default_left":[`+zeros+`]`,
		`"sum_hessian":[2,1,1]`, `"sum_hessian":[`+zeros+`]`,
	).Replace(minimalXGB)
	tests := []struct{ name, old, new string }{
		{"cycle", `"right_children":[2,-1,-1]`, `"right_children":[0,-1,-1]`},
		{"shared child", `"right_children":[2,-1,-1]`, `"right_children":[1,-1,-1]`},
		{"child out of range", `"right_children":[2,-1,-1]`, `"right_children":[7,-1,-1]`},
		{"half leaf", `"right_children":[2,-1,-1]`, `"right_children":[-1,-1,-1]`},
		{"feature beyond num_feature", `"split_indices":[0,0,0]`, `"split_indices":[2,0,0]`},
		{"short array", `"sum_hessian":[2,1,1]`, `"sum_hessian":[2,1]`},
		{"group out of range", `"tree_info":[0]`, `"tree_info":[1]`},
		{"tree_info count", `"tree_info":[0]`, `"tree_info":[0,0]`},
		{"unknown objective", `reg:squarederror`, `reg:mystery`},
		{"unknown booster", `"gbtree"`, `"gbforest"`},
		{"base_score list length", `"5E-1"`, `"[1,2]"`},
		{"logistic base_score", `reg:squarederror`, `binary:logistic","x":"`},
		{"categories outside list", `"sum_hessian":[2,1,1]`, `"sum_hessian":[2,1,1],"split_type":[1,0,0],"categories":[1],"categories_nodes":[0],"categories_segments":[0],"categories_sizes":[2]`},
		{"categories on numeric node", `"sum_hessian":[2,1,1]`, `"sum_hessian":[2,1,1],"split_type":[0,0,0],"categories":[1],"categories_nodes":[0],"categories_segments":[0],"categories_sizes":[1]`},
		{"categorical node without categories", `"sum_hessian":[2,1,1]`, `"sum_hessian":[2,1,1],"split_type":[1,0,0]`},
		{"negative category", `"sum_hessian":[2,1,1]`, `"sum_hessian":[2,1,1],"split_type":[1,0,0],"categories":[-3],"categories_nodes":[0],"categories_segments":[0],"categories_sizes":[1]`},
		{"zero features", `"num_feature":"2"`, `"num_feature":"0"`},
		{"fractional index", `"split_indices":[0,0,0]`, `"split_indices":[0.5,0,0]`},
		{"truncated", `}}}}`, `}}}`},
		{"trailing data", `}}}}`, `}}}}x`},
		{"bad token", `"num_class":"0"`, `"num_class":nope`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := strings.Replace(minimalXGB, tt.old, tt.new, 1)
			if doc == minimalXGB {
				t.Fatalf("replacement %q not found", tt.old)
			}
			if tt.name == "logistic base_score" {
				doc = strings.Replace(doc, `"5E-1"`, `"1"`, 1)
			}
			if _, err := LoadXGBoostJSON(strings.NewReader(doc)); err == nil {
				t.Error("loaded without error")
			}
		})
	}
	t.Run("deeper than the limit", func(t *testing.T) {
		t.Parallel()
		_, err := LoadXGBoostJSON(strings.NewReader(deep))
		if err == nil || !strings.Contains(err.Error(), "deeper") {
			t.Errorf("error = %v, want a depth error", err)
		}
	})
}

func TestMalformedUBJ(t *testing.T) {
	t.Parallel()
	tests := map[string][]byte{
		"empty":                 {},
		"count beyond input":    []byte("[$d#L\x7f\xff\xff\xff\xff\xff\xff\xff"),
		"typed count too large": []byte("[$d#l\x00\x10\x00\x00\x00\x00"),
		"null flood":            []byte("[$Z#l\x7f\xff\xff\xff"),
		"negative length":       []byte("Si\xff"),
		"unterminated object":   []byte("{i\x01a"),
		"unknown marker":        []byte("[?]"),
		"deep nesting":          bytes.Repeat([]byte("["), 1000),
		"type without count":    []byte("[$d]"),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := LoadXGBoostUBJ(bytes.NewReader(data)); err == nil {
				t.Error("loaded without error")
			}
		})
	}
}

func TestUBJSONValues(t *testing.T) {
	t.Parallel()
	// {"a": [$d#i2 1.5 -2], "b": [i 7 S i1 "x" T Z], "c": D 0.25}
	data := []byte("{i\x01a[$d#i\x02\x3f\xc0\x00\x00\xc0\x00\x00\x00" +
		"i\x01b[i\x07Si\x01xTZ]" +
		"i\x01cD\x3f\xd0\x00\x00\x00\x00\x00\x00}")
	v, err := parseUBJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	obj := v.(map[string]any)
	if a := obj["a"].([]float32); len(a) != 2 || a[0] != 1.5 || a[1] != -2 {
		t.Errorf("a = %v", obj["a"])
	}
	if b := obj["b"].([]any); len(b) != 4 || b[0] != int64(7) || b[1] != "x" || b[2] != true || b[3] != nil {
		t.Errorf("b = %v", obj["b"])
	}
	if c := obj["c"].(float64); c != 0.25 {
		t.Errorf("c = %v", c)
	}
}

func TestMalformedLightGBM(t *testing.T) {
	t.Parallel()
	const valid = "tree\nversion=v3\nnum_class=1\nnum_tree_per_iteration=1\nmax_feature_idx=1\nobjective=regression\n\n" +
		"Tree=0\nnum_leaves=2\nnum_cat=0\nsplit_feature=0\nthreshold=0.5\ndecision_type=2\nleft_child=-1\nright_child=-2\n" +
		"leaf_value=1 2\nleaf_count=3 4\ninternal_count=7\n\nend of trees\n"
	if m, err := LoadLightGBM(strings.NewReader(valid)); err != nil {
		t.Fatal(err)
	} else {
		var out [1]float64
		m.PredictRow([]float32{0.5, 0}, out[:])
		if out[0] != 1 {
			t.Errorf("prediction = %v, want 1", out[0])
		}
	}
	tests := []struct{ name, old, new string }{
		{"not lightgbm", "tree\n", "forest\n"},
		{"version", "version=v3", "version=v9"},
		{"child loops to root", "left_child=-1", "left_child=0"},
		{"leaf out of range", "right_child=-2", "right_child=-9"},
		{"feature beyond max_feature_idx", "split_feature=0", "split_feature=2"},
		{"short leaf values", "leaf_value=1 2", "leaf_value=1"},
		{"non-finite leaf", "leaf_value=1 2", "leaf_value=1 nan"},
		{"unknown objective", "objective=regression", "objective=mystery"},
		{"no objective", "objective=regression\n", ""},
		{"bad decision type", "decision_type=2", "decision_type=99"},
		{"tree out of order", "Tree=0", "Tree=3"},
		{"category set index", "decision_type=2", "decision_type=1"},
		{"cat boundaries", "num_cat=0", "num_cat=1\ncat_boundaries=0 5\ncat_threshold=1"},
		{"cat boundaries not increasing", "num_cat=0", "num_cat=2\ncat_boundaries=0 9 1\ncat_threshold=1"},
		{"linear tree", "num_cat=0", "num_cat=0\nis_linear=1"},
		{"trees per iteration", "num_tree_per_iteration=1", "num_tree_per_iteration=2"},
		{"bad sigmoid", "objective=regression", "objective=binary sigmoid:-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			text := strings.Replace(valid, tt.old, tt.new, 1)
			if text == valid {
				t.Fatalf("replacement %q not found", tt.old)
			}
			if _, err := LoadLightGBM(strings.NewReader(text)); err == nil {
				t.Error("loaded without error")
			}
		})
	}
}

func TestEvaluationPanicsOnShortSlices(t *testing.T) {
	t.Parallel()
	m, err := LoadXGBoostJSON(strings.NewReader(minimalXGB))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("PredictRow with a short row did not panic")
		}
	}()
	m.PredictRow([]float32{float32(math.Pi)}, make([]float64, 1))
}
