package worker

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hokusai-ai/inference-queue/internal/registry"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker/model"
	"github.com/hokusai-ai/inference-queue/worker/model/tree"
)

// LocalLoader loads file:// models; relative paths are resolved under base.
// Its revision is the registry's, or else the model's own digest of its
// files, so a changed model on disk shows up as a new revision.
func LocalLoader(base string) LoadFunc {
	return func(ctx context.Context, spec registry.Spec) (Model, error) {
		dir, ok := strings.CutPrefix(spec.Source, "file://")
		if !ok {
			return nil, &NotReady{Reason: "model_load_failed:" + spec.ID,
				Err: fmt.Errorf("source %s is not a local folder; this worker loads file:// sources", spec.Source)}
		}
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(base, dir)
		}
		m, err := model.Load(dir)
		if errors.Is(err, tree.ErrPickle) {
			return nil, &NotReady{Reason: "pickle_refused:" + spec.ID, Err: err}
		}
		if err != nil {
			return nil, fmt.Errorf("load model %s from %s: %w", spec.ID, dir, err)
		}
		rev := spec.Revision
		if rev == "" {
			rev = m.Revision()
		}
		return &folderModel{m: m, info: jobs.ModelInfo{Task: string(m.Task()), Revision: rev,
			InferenceMethods: []string{"sync", "async"}, Schema: *m.Schema()}}, nil
	}
}

// folderModel adapts a loaded model folder to the worker's Model.
type folderModel struct {
	m    *model.Model
	info jobs.ModelInfo
}

func (f *folderModel) Info() jobs.ModelInfo { return f.info }

func (f *folderModel) Predict(rows []jobs.Row) ([]any, error) {
	preds, err := f.m.Predict(rows)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(preds))
	for i := range preds {
		out[i] = preds[i]
	}
	return out, nil
}
