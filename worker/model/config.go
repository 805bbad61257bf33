package model

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// Task says what a model predicts and which head turns its output into a
// Prediction.
type Task string

// The tasks a model folder can declare.
const (
	TaskLeadScoring    Task = "lead-scoring"
	TaskClassification Task = "classification"
	TaskRegression     Task = "regression"
)

// Model file formats, as config.json names them.
const (
	FormatXGBoostJSON  = "xgboost-json"
	FormatXGBoostUBJ   = "xgboost-ubj"
	FormatLightGBMText = "lightgbm-text"
)

// formatByExt infers a missing "format" from the model file's extension.
var formatByExt = map[string]string{
	".json": FormatXGBoostJSON,
	".ubj":  FormatXGBoostUBJ,
	".txt":  FormatLightGBMText,
}

// configFile is the JSON shape of config.json. Only the "hokusai" object is
// read; other top-level keys (a Hub repo's own metadata) are ignored, while
// unknown keys inside it are refused, as they are most likely typos.
type configFile struct {
	Hokusai *json.RawMessage `json:"hokusai"`
}

type hokusaiConfig struct {
	Task      Task            `json:"task"`
	Name      string          `json:"name"`
	ModelFile string          `json:"model_file"`
	Format    string          `json:"format"`
	Features  []featureConfig `json:"features"`
	Head      headConfig      `json:"head"`
	// StrictInputs refuses, for every request, what lax parsing would
	// score with a warning (jobs.Mode).
	StrictInputs bool `json:"strict_inputs"`
}

type featureConfig struct {
	Name        string         `json:"name"`
	Type        jobs.FieldType `json:"type"`
	Label       string         `json:"label"`
	Description string         `json:"description"`
	Required    bool           `json:"required"`
	Default     any            `json:"default"`
	Min         *float64       `json:"min"`
	Max         *float64       `json:"max"`
	// Integer makes a number feature take whole numbers only.
	Integer bool `json:"integer"`
	// Values maps each allowed category to the number the model was
	// trained on.
	Values map[string]float64 `json:"values"`
	// Buckets are a timeline feature's values, nearest first.
	Buckets []timelineBucket `json:"buckets"`
	// Rules map free text to a code: the first rule with a keyword found
	// in the text wins; DefaultCode (or missing, when absent) otherwise.
	Rules       []keywordRule `json:"rules"`
	DefaultCode *float64      `json:"default_code"`
}

// timelineBucket is one value of a timeline feature: the timelines of at
// most MaxMonths months (the last bucket has no bound) and their code.
type timelineBucket struct {
	Value     string   `json:"value"`
	Code      float64  `json:"code"`
	MaxMonths *float64 `json:"max_months"`
}

type keywordRule struct {
	Keywords []string `json:"keywords"`
	Code     float64  `json:"code"`
}

type headConfig struct {
	ScoreScale *float64 `json:"score_scale"`
	Thresholds *struct {
		Hot  *float64 `json:"hot"`
		Warm *float64 `json:"warm"`
	} `json:"thresholds"`
	Labels *struct {
		Hot  string `json:"hot"`
		Warm string `json:"warm"`
		Cold string `json:"cold"`
	} `json:"labels"`
	TopFactors *int     `json:"top_factors"`
	Classes    []string `json:"classes"`
}

// Head defaults, from the lead-scoring API partners already use.
const (
	defaultScoreScale = 100
	defaultHot        = 70
	defaultWarm       = 40
	defaultTopFactors = 3
)

// spec is a checked config.json: everything the model folder declares,
// compiled, but not yet matched against the model file.
type spec struct {
	task      Task
	name      string
	modelFile string
	format    string
	schema    *jobs.Schema
	features  []encoder
	head      head
}

// head holds the output settings of every task; only the task's own are set.
type head struct {
	scale                     float64
	hot, warm                 float64
	hotLabel, warmLabel, cold string
	topFactors                int
	classes                   []string
}

// parseConfig reads and checks config.json. Errors read as sentences and
// name the offending feature or setting.
func parseConfig(data []byte) (*spec, error) {
	var file configFile
	if err := json.Unmarshal(data, &file); err != nil {
		return nil, fmt.Errorf("config.json is not valid JSON: %w", err)
	}
	if file.Hokusai == nil {
		return nil, errors.New(`config.json has no "hokusai" object`)
	}
	var c hokusaiConfig
	dec := json.NewDecoder(bytes.NewReader(*file.Hokusai))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf(`config.json "hokusai" object: %w`, err)
	}
	s := &spec{task: c.Task, name: c.Name, modelFile: c.ModelFile, format: c.Format}
	switch c.Task {
	case TaskLeadScoring, TaskClassification, TaskRegression:
	case "":
		return nil, errors.New("config.json names no task; want lead-scoring, classification or regression")
	default:
		return nil, fmt.Errorf("task %q is unknown; want lead-scoring, classification or regression", c.Task)
	}
	if err := s.checkModelFile(); err != nil {
		return nil, err
	}
	if len(c.Features) == 0 {
		return nil, errors.New("config.json declares no features")
	}
	s.schema = &jobs.Schema{Fields: make([]jobs.Field, len(c.Features)), Strict: c.StrictInputs}
	s.features = make([]encoder, len(c.Features))
	for i := range c.Features {
		f := &c.Features[i]
		field, enc, err := compileFeature(f)
		if err != nil {
			return nil, fmt.Errorf("feature %d (%q): %w", i, f.Name, err)
		}
		s.schema.Fields[i], s.features[i] = field, enc
	}
	if err := s.schema.Init(); err != nil {
		return nil, fmt.Errorf("config.json features: %w", err)
	}
	h, err := compileHead(c.Task, &c.Head)
	if err != nil {
		return nil, err
	}
	s.head = h
	return s, nil
}

func (s *spec) checkModelFile() error {
	if s.modelFile == "" {
		return errors.New("config.json names no model_file")
	}
	if !filepath.IsLocal(s.modelFile) {
		return fmt.Errorf("model_file %q must be a relative path inside the model folder", s.modelFile)
	}
	ext := strings.ToLower(filepath.Ext(s.modelFile))
	if isPickleExt(ext) {
		return pickleError(s.modelFile)
	}
	if s.format == "" {
		format, ok := formatByExt[ext]
		if !ok {
			return fmt.Errorf("model_file %q has no format and its extension says none; set format to %s, %s or %s",
				s.modelFile, FormatXGBoostJSON, FormatXGBoostUBJ, FormatLightGBMText)
		}
		s.format = format
	}
	switch s.format {
	case FormatXGBoostJSON, FormatXGBoostUBJ, FormatLightGBMText:
		return nil
	}
	if strings.Contains(s.format, "pickle") || strings.Contains(s.format, "joblib") || strings.Contains(s.format, "sklearn") {
		return pickleError(s.modelFile)
	}
	return fmt.Errorf("format %q is unknown; want %s, %s or %s", s.format, FormatXGBoostJSON, FormatXGBoostUBJ, FormatLightGBMText)
}

func compileFeature(f *featureConfig) (jobs.Field, encoder, error) {
	field := jobs.Field{
		Name: f.Name, Type: f.Type, Description: f.Description, Required: f.Required,
		Default: f.Default, Min: f.Min, Max: f.Max, Integer: f.Integer,
	}
	enc := encoder{name: f.Name, label: f.Label, typ: f.Type}
	if enc.label == "" {
		enc.label = f.Name
	}
	switch f.Type {
	case jobs.FieldNumber, jobs.FieldBoolean, jobs.FieldCategory, jobs.FieldText, jobs.FieldTimeline:
	case "":
		return field, enc, errors.New("the feature has no type; want number, boolean, category, text or timeline")
	default:
		return field, enc, fmt.Errorf("type %q is unknown; want number, boolean, category, text or timeline", f.Type)
	}
	if f.Type != jobs.FieldNumber && (f.Min != nil || f.Max != nil || f.Integer) {
		return field, enc, errors.New("min, max and integer apply only to number features")
	}
	if f.Type != jobs.FieldCategory && f.Values != nil {
		return field, enc, errors.New("values apply only to category features")
	}
	if f.Type != jobs.FieldTimeline && f.Buckets != nil {
		return field, enc, errors.New("buckets apply only to timeline features")
	}
	if f.Type != jobs.FieldText && (f.Rules != nil || f.DefaultCode != nil) {
		return field, enc, errors.New("rules and default_code apply only to text features")
	}
	if f.Min != nil && f.Max != nil && *f.Min > *f.Max {
		return field, enc, fmt.Errorf("min %g is greater than max %g", *f.Min, *f.Max)
	}
	switch f.Type {
	case jobs.FieldCategory:
		if len(f.Values) == 0 {
			return field, enc, errors.New("a category feature needs a values map from each allowed value to its code")
		}
		enc.codes = make(map[string]float32, len(f.Values))
		seen := make(map[string]string, len(f.Values))
		for v, code := range f.Values {
			if !finite32(code) {
				return field, enc, fmt.Errorf("value %q has code %g, which is not a finite float32", v, code)
			}
			if strings.TrimSpace(v) != v || v == "" {
				return field, enc, fmt.Errorf("value %q is empty or has surrounding spaces", v)
			}
			key := strings.ToLower(v)
			if other, dup := seen[key]; dup {
				return field, enc, fmt.Errorf("values %q and %q differ only in case, and inputs match case-insensitively", other, v)
			}
			seen[key] = v
			enc.codes[v] = float32(code)
			field.Values = append(field.Values, v)
		}
		sort.Slice(field.Values, func(a, b int) bool {
			ca, cb := f.Values[field.Values[a]], f.Values[field.Values[b]]
			return ca < cb || (ca == cb && field.Values[a] < field.Values[b])
		})
	case jobs.FieldTimeline:
		if err := compileBuckets(f.Buckets, &field, &enc); err != nil {
			return field, enc, err
		}
	case jobs.FieldText:
		if len(f.Rules) == 0 {
			return field, enc, errors.New("a text feature needs keyword rules that map the text to codes")
		}
		for r, rule := range f.Rules {
			if len(rule.Keywords) == 0 {
				return field, enc, fmt.Errorf("rule %d lists no keywords", r)
			}
			if !finite32(rule.Code) {
				return field, enc, fmt.Errorf("rule %d has code %g, which is not a finite float32", r, rule.Code)
			}
			for _, kw := range rule.Keywords {
				words := splitWords(kw)
				if len(words) == 0 {
					return field, enc, fmt.Errorf("rule %d has keyword %q, which holds no letters or digits", r, kw)
				}
				enc.rules = append(enc.rules, compiledRule{words: words, code: float32(rule.Code)})
			}
		}
		enc.defaultCode = float32(math.NaN())
		if f.DefaultCode != nil {
			if !finite32(*f.DefaultCode) {
				return field, enc, fmt.Errorf("default_code %g is not a finite float32", *f.DefaultCode)
			}
			enc.defaultCode = float32(*f.DefaultCode)
		}
	}
	enc.plus = enc.label + " (+)"
	enc.minus = enc.label + " (-)"
	return field, enc, nil
}

// compileBuckets checks a timeline feature's buckets: nearest first, each
// but the last bounded by max_months, the bounds rising; names unique
// whatever their case, codes finite.
func compileBuckets(buckets []timelineBucket, field *jobs.Field, enc *encoder) error {
	if len(buckets) < 2 {
		return errors.New("a timeline feature needs two or more buckets, each a value, its code and (but the last) max_months")
	}
	enc.codes = make(map[string]float32, len(buckets))
	seen := make(map[string]bool, len(buckets))
	for i, b := range buckets {
		last := i == len(buckets)-1
		switch {
		case strings.TrimSpace(b.Value) != b.Value || b.Value == "":
			return fmt.Errorf("bucket %d: value %q is empty or has surrounding spaces", i, b.Value)
		case seen[strings.ToLower(b.Value)]:
			return fmt.Errorf("bucket %d: value %q is named twice (case does not count)", i, b.Value)
		case !finite32(b.Code):
			return fmt.Errorf("bucket %d: code %g is not a finite float32", i, b.Code)
		case last && b.MaxMonths != nil:
			return fmt.Errorf("bucket %d (%q) is the last and takes every timeline further out: it has no max_months", i, b.Value)
		case !last && (b.MaxMonths == nil || *b.MaxMonths < 0 || (i > 0 && *b.MaxMonths <= field.MaxMonths[i-1])):
			return fmt.Errorf("bucket %d (%q) needs max_months of 0 or more, above the bucket before it", i, b.Value)
		}
		seen[strings.ToLower(b.Value)] = true
		enc.codes[b.Value] = float32(b.Code)
		field.Values = append(field.Values, b.Value)
		if !last {
			field.MaxMonths = append(field.MaxMonths, *b.MaxMonths)
		}
	}
	return nil
}

func compileHead(task Task, c *headConfig) (head, error) {
	h := head{topFactors: defaultTopFactors}
	if c.TopFactors != nil {
		if *c.TopFactors < 0 {
			return h, fmt.Errorf("head.top_factors is %d; want 0 (no factors) or more", *c.TopFactors)
		}
		h.topFactors = *c.TopFactors
	}
	leadOnly := c.ScoreScale != nil || c.Thresholds != nil || c.Labels != nil
	if task != TaskLeadScoring && leadOnly {
		return h, fmt.Errorf("head.score_scale, thresholds and labels apply only to lead-scoring, not %s", task)
	}
	if task != TaskClassification && c.Classes != nil {
		return h, fmt.Errorf("head.classes applies only to classification, not %s", task)
	}
	switch task {
	case TaskClassification:
		seen := map[string]bool{}
		for _, name := range c.Classes {
			if seen[name] {
				return h, fmt.Errorf("head.classes names %q twice", name)
			}
			seen[name] = true
		}
		h.classes = c.Classes
	case TaskLeadScoring:
		h.scale, h.hot, h.warm = defaultScoreScale, defaultHot, defaultWarm
		h.hotLabel, h.warmLabel, h.cold = "Hot", "Warm", "Cold"
		if c.ScoreScale != nil {
			h.scale = *c.ScoreScale
		}
		if t := c.Thresholds; t != nil {
			if t.Hot != nil {
				h.hot = *t.Hot
			}
			if t.Warm != nil {
				h.warm = *t.Warm
			}
		}
		if l := c.Labels; l != nil {
			h.hotLabel = cmp.Or(l.Hot, h.hotLabel)
			h.warmLabel = cmp.Or(l.Warm, h.warmLabel)
			h.cold = cmp.Or(l.Cold, h.cold)
		}
		if !(h.scale > 0) {
			return h, fmt.Errorf("head.score_scale is %g; want a number above 0", h.scale)
		}
		if !(0 < h.warm && h.warm < h.hot && h.hot <= h.scale) {
			return h, fmt.Errorf("head.thresholds hot %g and warm %g must satisfy 0 < warm < hot <= score_scale (%g)",
				h.hot, h.warm, h.scale)
		}
	}
	return h, nil
}

func finite32(v float64) bool {
	return !math.IsNaN(v) && math.Abs(v) <= math.MaxFloat32
}
