package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker/model/tree"
)

// ConfigFile is the name of the config file in a model folder.
const ConfigFile = "config.json"

// Converter is the script that turns pickled scikit-learn models into
// files the engine reads; errors about pickles name it.
const Converter = "tools/sklearn_convert.py"

var loaders = map[string]func(io.Reader) (*tree.Model, error){
	FormatXGBoostJSON:  tree.LoadXGBoostJSON,
	FormatXGBoostUBJ:   tree.LoadXGBoostUBJ,
	FormatLightGBMText: tree.LoadLightGBM,
}

// Model is a loaded model folder: the compiled engine, the input schema,
// the feature encoders and the output head. It is immutable and safe for
// concurrent use.
type Model struct {
	spec
	engine   *tree.Model
	revision string
}

// Load reads the model folder dir: config.json and the model file it names.
// A folder holding a Python pickle instead is refused with an error that
// wraps tree.ErrPickle and names the converter.
func Load(dir string) (*Model, error) {
	config, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if errors.Is(err, fs.ErrNotExist) {
		if pickle := findPickle(dir); pickle != "" {
			return nil, fmt.Errorf("load model %s: %w", dir, pickleError(pickle))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	s, err := parseConfig(config)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	file, err := os.ReadFile(filepath.Join(dir, s.modelFile))
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	engine, err := loaders[s.format](bytes.NewReader(file))
	if err != nil {
		return nil, fmt.Errorf("load model %s: %s as %s: %w", dir, s.modelFile, s.format, err)
	}
	m := &Model{spec: *s, engine: engine, revision: revision(config, file)}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	return m, nil
}

// check matches the config against the model file.
func (m *Model) check() error {
	nf, k := m.engine.NumFeatures(), m.engine.NumOutputs()
	if len(m.features) != nf {
		return fmt.Errorf("config.json declares %d features but %s expects %d", len(m.features), m.modelFile, nf)
	}
	switch m.task {
	case TaskLeadScoring, TaskRegression:
		if m.task == TaskLeadScoring && !probabilityObjective(m.engine.Objective()) {
			return fmt.Errorf("a lead-scoring model must predict a probability, but %s has objective %s; want binary:logistic, "+
				"reg:logistic, a LightGBM binary objective, or a model converted by %s", m.modelFile, m.engine.Objective(), Converter)
		}
		if k != 1 {
			return fmt.Errorf("a %s model needs one output, but %s has %d (objective %s)", m.task, m.modelFile, k, m.engine.Objective())
		}
	case TaskClassification:
		want := max(2, k)
		if m.head.classes == nil {
			m.head.classes = make([]string, want)
			for i := range want {
				m.head.classes[i] = strconv.Itoa(i)
			}
		}
		if len(m.head.classes) != want {
			return fmt.Errorf("head.classes names %d classes but %s predicts %d", len(m.head.classes), m.modelFile, want)
		}
	}
	return nil
}

// probabilityObjective reports whether a model trained with objective (an
// XGBoost name, or a LightGBM objective line) predicts a probability.
// reg:squarederror is what tools/sklearn_convert.py writes for forests,
// whose leaves hold probabilities.
func probabilityObjective(objective string) bool {
	name, _, _ := strings.Cut(objective, " ")
	switch name {
	case "binary:logistic", "reg:logistic", "reg:squarederror", "binary", "cross_entropy", "xentropy":
		return true
	}
	return false
}

// revision identifies the folder's content: the first 12 bytes of the
// SHA-256 of config.json and the model file, in hex.
func revision(config, file []byte) string {
	h := sha256.New()
	h.Write(config)
	h.Write(file)
	return hex.EncodeToString(h.Sum(nil)[:12])
}

func isPickleExt(ext string) bool {
	switch ext {
	case ".pkl", ".pickle", ".joblib":
		return true
	}
	return false
}

// findPickle returns the name of a pickle in dir, or "".
func findPickle(dir string) string {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if isPickleExt(strings.ToLower(filepath.Ext(e.Name()))) {
			return e.Name()
		}
	}
	return ""
}

func pickleError(name string) error {
	return fmt.Errorf("model file %s: %w; convert it once, on a trusted machine, with "+
		"`/usr/bin/python3 %s %s model.json` and set model_file to model.json", name, tree.ErrPickle, Converter, name)
}

// Task is what the model predicts.
func (m *Model) Task() Task { return m.task }

// Name is the human-readable name from config.json, possibly empty.
func (m *Model) Name() string { return m.name }

// Revision identifies the loaded files' content (see Load); a worker that
// knows the Hub commit may publish that instead.
func (m *Model) Revision() string { return m.revision }

// Schema is the input contract: what the API validates requests against.
// Callers must not modify it.
func (m *Model) Schema() *jobs.Schema { return m.schema }

// Engine is the compiled model, for callers that want raw margins or
// contributions of feature vectors.
func (m *Model) Engine() *tree.Model { return m.engine }

// Classes are the class labels of a classification model, in output order.
func (m *Model) Classes() []string { return m.head.classes }

// Encode writes the feature vector of a row validated by Schema into x,
// which must hold Engine().NumFeatures() values. Missing inputs become NaN.
func (m *Model) Encode(row jobs.Row, x []float32) error {
	if len(row) != len(m.features) {
		return fmt.Errorf("row has %d values but the model has %d inputs", len(row), len(m.features))
	}
	for i := range m.features {
		v, err := m.features[i].encode(row[i])
		if err != nil {
			return err
		}
		x[i] = v
	}
	return nil
}

// Predict encodes rows validated by Schema and runs them through the model
// as one block.
func (m *Model) Predict(rows []jobs.Row) ([]Prediction, error) {
	nf := len(m.features)
	X := make([]float32, len(rows)*nf)
	for r, row := range rows {
		if err := m.Encode(row, X[r*nf:(r+1)*nf]); err != nil {
			return nil, fmt.Errorf("row %d: %w", r, err)
		}
	}
	return m.PredictFeatures(X)
}

// PredictFeatures runs encoded feature vectors (row-major, NumFeatures
// values a row, NaN for missing) through the model and the head. The
// allocations are per call, not per row, except for a text feature's words.
func (m *Model) PredictFeatures(X []float32) ([]Prediction, error) {
	return m.predictFeatures(X, true, nil)
}

// ScoreFeatures is PredictFeatures without factors: TreeSHAP costs far more
// than the prediction itself, which a million-row batch cannot afford.
func (m *Model) ScoreFeatures(X []float32) ([]Prediction, error) {
	return m.predictFeatures(X, false, nil)
}

// ScoreFeaturesInto is ScoreFeatures writing over dst when it has room, so
// a caller scoring block after block allocates the predictions once.
func (m *Model) ScoreFeaturesInto(X []float32, dst []Prediction) ([]Prediction, error) {
	return m.predictFeatures(X, false, dst)
}

func (m *Model) predictFeatures(X []float32, explain bool, dst []Prediction) ([]Prediction, error) {
	nf, k := m.engine.NumFeatures(), m.engine.NumOutputs()
	if len(X)%nf != 0 {
		return nil, fmt.Errorf("%d feature values is not a whole number of %d-feature rows", len(X), nf)
	}
	n := len(X) / nf
	out := make([]float64, n*k)
	if k == 1 {
		m.engine.PredictBlock(X, out)
	} else {
		// Softmax of the margins, whatever the objective's own transform
		// (multi:softmax predicts a class index).
		m.engine.MarginBlock(X, out)
		for r := range n {
			softmax(out[r*k : (r+1)*k])
		}
	}
	preds := dst[:0]
	if cap(preds) < n {
		preds = make([]Prediction, n)
	}
	preds = preds[:n]
	hd := newHeadWriter(m, n, explain)
	for r := range preds {
		preds[r] = Prediction{}
		group := hd.fill(&preds[r], out[r*k:(r+1)*k])
		if explain {
			hd.explain(&preds[r], X[r*nf:(r+1)*nf], group)
		}
	}
	return preds, nil
}
