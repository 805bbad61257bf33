package tree

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// LoadXGBoostJSON reads a model written by xgboost's
// Booster.save_model("model.json"), 1.x or 2.x layout.
func LoadXGBoostJSON(r io.Reader) (*Model, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read xgboost json model: %w", err)
	}
	doc, err := parseJSON(data)
	if err != nil {
		return nil, fmt.Errorf("parse xgboost json model: %w", err)
	}
	m, err := xgboostModel(doc)
	if err != nil {
		return nil, fmt.Errorf("load xgboost json model: %w", err)
	}
	return m, nil
}

// LoadXGBoostUBJ reads a model written by xgboost's
// Booster.save_model("model.ubj") (UBJSON, the 2.1+ default format).
func LoadXGBoostUBJ(r io.Reader) (*Model, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read xgboost ubj model: %w", err)
	}
	doc, err := parseUBJSON(data)
	if err != nil {
		return nil, fmt.Errorf("parse xgboost ubj model: %w", err)
	}
	m, err := xgboostModel(doc)
	if err != nil {
		return nil, fmt.Errorf("load xgboost ubj model: %w", err)
	}
	return m, nil
}

// xgboostObjectives maps each supported objective to its output transform
// and to how base_score (stored in output space) becomes a margin.
var xgboostObjectives = map[string]struct {
	transform transform
	link      func(float64) (float64, error)
}{
	"binary:logistic":      {transformSigmoid, logit},
	"reg:logistic":         {transformSigmoid, logit},
	"binary:logitraw":      {transformIdentity, identityLink}, // 1.7.4 adds base_score unchanged
	"reg:squarederror":     {transformIdentity, identityLink},
	"reg:linear":           {transformIdentity, identityLink},
	"reg:squaredlogerror":  {transformIdentity, identityLink},
	"reg:pseudohubererror": {transformIdentity, identityLink},
	"reg:absoluteerror":    {transformIdentity, identityLink},
	"reg:quantileerror":    {transformIdentity, identityLink},
	"count:poisson":        {transformExp, logLink},
	"reg:gamma":            {transformExp, logLink},
	"reg:tweedie":          {transformExp, logLink},
	"multi:softprob":       {transformSoftmax, identityLink},
	"multi:softmax":        {transformArgmax, identityLink},
	"rank:pairwise":        {transformIdentity, identityLink},
	"rank:ndcg":            {transformIdentity, identityLink},
	"rank:map":             {transformIdentity, identityLink},
	"survival:cox":         {transformExp, identityLink},
}

func identityLink(v float64) (float64, error) { return v, nil }

func logit(p float64) (float64, error) {
	if !(p > 0 && p < 1) {
		return 0, fmt.Errorf("base_score %v is not a probability in (0, 1)", p)
	}
	return -math.Log(1/p - 1), nil
}

func logLink(v float64) (float64, error) {
	if !(v > 0) {
		return 0, fmt.Errorf("base_score %v is not positive", v)
	}
	return math.Log(v), nil
}

// xgboostModel builds a Model from a decoded save_model document.
func xgboostModel(doc any) (*Model, error) {
	learner, err := member(doc, "model", "learner")
	if err != nil {
		return nil, err
	}
	param, err := member(learner, "learner", "learner_model_param")
	if err != nil {
		return nil, err
	}
	nf, err := intMember(param, "learner_model_param", "num_feature", 1, maxFeatures)
	if err != nil {
		return nil, err
	}
	outputs := int64(1)
	for _, key := range []string{"num_class", "num_target"} {
		v, err := optMember(param, "learner_model_param", key)
		if err != nil || v == nil {
			continue
		}
		n, err := asInt(v, "learner_model_param."+key, 0, 1<<16)
		if err != nil {
			return nil, err
		}
		outputs = max(outputs, n)
	}
	objective, err := member(learner, "learner", "objective")
	if err != nil {
		return nil, err
	}
	nameV, err := member(objective, "learner.objective", "name")
	if err != nil {
		return nil, err
	}
	name, err := asString(nameV, "learner.objective.name")
	if err != nil {
		return nil, err
	}
	obj, ok := xgboostObjectives[name]
	if !ok {
		return nil, fmt.Errorf("objective %q is not supported", name)
	}
	b, err := newBuilder(name, int(nf), int(outputs))
	if err != nil {
		return nil, err
	}
	b.m.transform = obj.transform
	if v, _ := optMember(learner, "learner", "feature_names"); v != nil {
		b.m.names = stringList(v, int(nf))
	}
	if err := xgboostBaseScore(b.m, param, obj.link); err != nil {
		return nil, err
	}
	booster, err := member(learner, "learner", "gradient_booster")
	if err != nil {
		return nil, err
	}
	kindV, err := member(booster, "gradient_booster", "name")
	if err != nil {
		return nil, err
	}
	kind, err := asString(kindV, "gradient_booster.name")
	if err != nil {
		return nil, err
	}
	switch kind {
	case "gbtree":
		model, err := member(booster, "gradient_booster", "model")
		if err != nil {
			return nil, err
		}
		err = xgboostTrees(b, model, nil)
		if err != nil {
			return nil, err
		}
	case "dart":
		inner, err := member(booster, "gradient_booster", "gbtree")
		if err != nil {
			return nil, err
		}
		model, err := member(inner, "gradient_booster.gbtree", "model")
		if err != nil {
			return nil, err
		}
		wv, err := member(booster, "gradient_booster", "weight_drop")
		if err != nil {
			return nil, err
		}
		weights, err := asFloat32s(wv, "weight_drop")
		if err != nil {
			return nil, err
		}
		if err := xgboostTrees(b, model, weights); err != nil {
			return nil, err
		}
	case "gblinear":
		model, err := member(booster, "gradient_booster", "model")
		if err != nil {
			return nil, err
		}
		wv, err := member(model, "gradient_booster.model", "weights")
		if err != nil {
			return nil, err
		}
		w, err := asFloat32s(wv, "gblinear weights")
		if err != nil {
			return nil, err
		}
		if want := (nf + 1) * outputs; int64(len(w)) != want {
			return nil, fmt.Errorf("gblinear has %d weights, want (features+1) x outputs = %d", len(w), want)
		}
		b.m.linear = make([]float64, len(w))
		for i, v := range w {
			b.m.linear[i] = float64(v)
		}
	default:
		return nil, fmt.Errorf("booster %q is not supported", kind)
	}
	return b.m, nil
}

// stringList returns v as n strings, or nil if it is anything else.
func stringList(v any, n int) []string {
	list, ok := v.([]any)
	if !ok || len(list) != n {
		return nil
	}
	names := make([]string, n)
	for i, e := range list {
		if names[i], ok = e.(string); !ok {
			return nil
		}
	}
	return names
}

func intMember(v any, path, key string, lo, hi int64) (int64, error) {
	x, err := member(v, path, key)
	if err != nil {
		return 0, err
	}
	return asInt(x, path+"."+key, lo, hi)
}

// xgboostBaseScore sets the base margins from base_score, which 1.x
// stores as "5E-1" and 2.x as "[5E-1]" (one value per output, or one for
// all).
func xgboostBaseScore(m *Model, param any, link func(float64) (float64, error)) error {
	v, err := optMember(param, "learner_model_param", "base_score")
	if err != nil || v == nil {
		return err
	}
	var parts []string
	if s, ok := v.(string); ok {
		s = strings.TrimSpace(s)
		if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			s = s[1 : len(s)-1]
		}
		for p := range strings.SplitSeq(s, ",") {
			parts = append(parts, strings.TrimSpace(p))
		}
	}
	scores := make([]float64, 0, len(parts))
	for _, p := range parts {
		f, err := asFloat64(p, "base_score")
		if err != nil {
			return err
		}
		scores = append(scores, f)
	}
	if len(parts) == 0 {
		f, err := asFloat64(v, "base_score")
		if err != nil {
			return err
		}
		scores = append(scores, f)
	}
	if len(scores) != 1 && len(scores) != m.numOutputs {
		return fmt.Errorf("base_score has %d values for %d outputs", len(scores), m.numOutputs)
	}
	for g := range m.baseMargin {
		s := scores[min(g, len(scores)-1)]
		// xgboost keeps the score in float32 before applying the link.
		margin, err := link(float64(float32(s)))
		if err != nil {
			return err
		}
		m.baseMargin[g] = float64(float32(margin))
	}
	return nil
}
