package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hokusai-ai/inference-queue/internal/registry"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker/hub"
	"github.com/hokusai-ai/inference-queue/worker/model"
	"github.com/hokusai-ai/inference-queue/worker/model/tree"
	"github.com/hokusai-ai/inference-queue/worker/modelcache"
	"github.com/hokusai-ai/inference-queue/worker/secret"
)

// Readiness reasons a worker reports on /readyz and in its heartbeat.
const (
	ReasonTokenMissing = "hf_token_missing"
	ReasonTokenInvalid = "hf_token_invalid"
	ReasonRedis        = "redis_unreachable"
	ReasonNoModels     = "no_models_in_pool"
	// Per model, followed by ":" and the model's id.
	ReasonModelLoadFailed = "model_load_failed"
	ReasonPickleRefused   = "pickle_refused"
)

// modelReason is a per-model readiness reason: reason:ID.
func modelReason(reason, id string) string { return reason + ":" + id }

// SourcesConfig configures where models come from.
type SourcesConfig struct {
	// Base resolves relative file:// sources. Env HOKUSAI_MODELS_DIR, default ".".
	Base string
	// Hub downloads hf:// sources into its disk cache; nil refuses them.
	Hub *hub.Client
	// Token is the HF token's provider; nil means no token.
	Token secret.Provider
	// CacheBytes bounds the models held in memory. Env
	// HOKUSAI_MODEL_CACHE_BYTES, default 1 GiB.
	CacheBytes int64
}

// Sources loads the models registry entries name, from local folders
// (file://) or the HuggingFace Hub (hf://), keeping them in a byte-bounded
// LRU with one load per (source, revision) however many callers ask at once.
type Sources struct {
	cfg   SourcesConfig
	cache *modelcache.Cache[*folderModel]
}

// NewSources returns the loader; its Load method is a LoadFunc.
func NewSources(cfg SourcesConfig) *Sources {
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = 1 << 30
	}
	s := &Sources{cfg: cfg}
	s.cache = modelcache.New(cfg.CacheBytes, s.fetch)
	return s
}

// Stats reports the in-memory cache's counters.
func (s *Sources) Stats() modelcache.Stats { return s.cache.Stats() }

// Load returns the model spec names, with a readiness reason on failure
// (a *NotReady) when one applies.
func (s *Sources) Load(ctx context.Context, spec registry.Spec) (Model, error) {
	m, err := s.cache.Get(ctx, modelcache.Key{Repo: spec.Source, Revision: spec.Revision})
	if err != nil {
		return nil, s.classify(ctx, spec, err)
	}
	return m, nil
}

// fetch is the cache's loader: download if needed, then compile.
func (s *Sources) fetch(ctx context.Context, key modelcache.Key) (*folderModel, int64, error) {
	var dir, rev string
	switch {
	case strings.HasPrefix(key.Repo, "file://"):
		dir = strings.TrimPrefix(key.Repo, "file://")
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(s.cfg.Base, dir)
		}
		rev = key.Revision
	case strings.HasPrefix(key.Repo, "hf://"):
		if s.cfg.Hub == nil {
			return nil, 0, fmt.Errorf("source %s needs the Hub client, which this worker was built without", key.Repo)
		}
		revision := key.Revision
		if revision == "" {
			revision = "main"
		}
		var err error
		if dir, rev, err = s.cfg.Hub.Snapshot(ctx, strings.TrimPrefix(key.Repo, "hf://"), revision, nil); err != nil {
			return nil, 0, err
		}
	default:
		return nil, 0, fmt.Errorf("source %s is neither file:// nor hf://", key.Repo)
	}
	m, err := model.Load(dir)
	if err != nil {
		return nil, 0, err
	}
	if rev == "" {
		rev = m.Revision()
	}
	size, err := dirSize(dir)
	if err != nil {
		return nil, 0, err
	}
	return &folderModel{m: m, info: jobs.ModelInfo{Task: string(m.Task()), Revision: rev,
		InferenceMethods: []string{"sync", "async"}, Schema: *m.Schema()}}, size, nil
}

// classify turns a load failure into the readiness reason an operator acts on.
func (s *Sources) classify(ctx context.Context, spec registry.Spec, err error) error {
	reason := modelReason(ReasonModelLoadFailed, spec.ID)
	switch {
	case errors.Is(err, tree.ErrPickle):
		reason = modelReason(ReasonPickleRefused, spec.ID)
	case errors.Is(err, hub.ErrInvalidToken):
		reason = s.tokenProblem(ctx)
	case errors.Is(err, hub.ErrRepoNotFound), errors.Is(err, hub.ErrGatedRepo):
		// The Hub hides private repos from anonymous and wrong tokens alike.
		if p := s.tokenProblem(ctx); p != "" {
			reason = p
		}
	}
	return &NotReady{Reason: reason, Err: fmt.Errorf("load model %s from %s: %w", spec.ID, spec.Source, err)}
}

// tokenProblem says what is wrong with the HF token, if anything can be
// told: missing, or rejected by the Hub. A rejected token is re-read at once
// so a fixed secret is used on the next attempt.
func (s *Sources) tokenProblem(ctx context.Context) string {
	if s.cfg.Token == nil {
		return ReasonTokenMissing
	}
	if _, err := s.cfg.Token.Token(ctx); errors.Is(err, secret.ErrNoToken) {
		return ReasonTokenMissing
	}
	if s.cfg.Hub == nil {
		return ""
	}
	if _, err := s.cfg.Hub.Whoami(ctx); errors.Is(err, hub.ErrInvalidToken) {
		if r, ok := s.cfg.Token.(*secret.Refresher); ok {
			_, _ = r.Refresh(ctx)
		}
		return ReasonTokenInvalid
	}
	return ""
}

// Recheck reports a token the Hub has since revoked, for a worker that is
// already serving; it says nothing when no token is configured.
func (s *Sources) Recheck(ctx context.Context) []string {
	if s.cfg.Token == nil || s.cfg.Hub == nil {
		return nil
	}
	if _, err := s.cfg.Token.Token(ctx); err != nil {
		return nil
	}
	if p := s.tokenProblem(ctx); p != "" {
		return []string{p}
	}
	return nil
}

// folderModel adapts a loaded model folder to the worker's Model.
type folderModel struct {
	m    *model.Model
	info jobs.ModelInfo
}

func (f *folderModel) Info() jobs.ModelInfo { return f.info }

func (f *folderModel) Predict(rows []jobs.Row, explain bool) ([]any, error) {
	nf := len(f.info.Schema.Fields)
	x := make([]float32, len(rows)*nf)
	for i, row := range rows {
		if err := f.m.Encode(row, x[i*nf:(i+1)*nf]); err != nil {
			return nil, fmt.Errorf("row %d: %w", i, err)
		}
	}
	score := f.m.ScoreFeatures
	if explain {
		score = f.m.PredictFeatures
	}
	preds, err := score(x)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(preds))
	for i := range preds {
		out[i] = preds[i]
	}
	return out, nil
}

// dirSize adds up a model folder's files, following the symlinks of a Hub
// snapshot to their blobs.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := os.Stat(path)
		if err == nil {
			n += info.Size()
		}
		return err
	})
	return n, err
}
