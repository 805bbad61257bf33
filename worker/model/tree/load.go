package tree

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrPickle is returned (wrapped) for Python pickle files: unpickling runs
// arbitrary code, so they are never loaded. Callers check it with
// errors.Is and point at a converter.
var ErrPickle = errors.New("python pickle files are never loaded because unpickling runs arbitrary code")

// Load reads a model file, choosing the format by extension: .json
// (XGBoost JSON), .ubj (XGBoost UBJSON) or .txt (LightGBM text). .pkl,
// .pickle and .joblib give an error wrapping ErrPickle.
func Load(path string) (*Model, error) {
	var load func(io.Reader) (*Model, error)
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".json":
		load = LoadXGBoostJSON
	case ".ubj":
		load = LoadXGBoostUBJ
	case ".txt":
		load = LoadLightGBM
	case ".pkl", ".pickle", ".joblib":
		return nil, fmt.Errorf("load model %s: %w", path, ErrPickle)
	default:
		return nil, fmt.Errorf("load model %s: unknown model file extension %q (want .json, .ubj or .txt)", path, ext)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	defer f.Close()
	m, err := load(f)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	return m, nil
}
