package api

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/hokusai-ai/inference-queue/internal/registry"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// modelInfo is GET /api/v1/models/:id/info, with the field names existing
// clients use.
type modelInfo struct {
	ModelID          string       `json:"model_id"`
	Name             string       `json:"name"`
	Type             string       `json:"type"`
	Storage          string       `json:"storage"`
	IsAvailable      bool         `json:"is_available"`
	InferenceMethods []string     `json:"inference_methods"`
	MaxBatchSize     int          `json:"max_batch_size"`
	InputFields      []jobs.Field `json:"input_fields"`
	ModelRevision    string       `json:"model_revision"`
	Pool             string       `json:"pool"`
}

// modelHealth is GET /api/v1/models/:id/health.
type modelHealth struct {
	ModelID        string `json:"model_id"`
	Status         string `json:"status"`
	IsCached       bool   `json:"is_cached"`
	StorageType    string `json:"storage_type"`
	InferenceReady bool   `json:"inference_ready"`
	ReadyWorkers   int    `json:"ready_workers"`
}

func storage(spec registry.Spec) string {
	if strings.HasPrefix(spec.Source, "hf://") {
		return "huggingface"
	}
	return "local"
}

func describeModel(snap *snapshot, spec registry.Spec) modelInfo {
	out := modelInfo{ModelID: spec.ID, Name: spec.Name, Storage: storage(spec), MaxBatchSize: spec.MaxBatchSize,
		Pool: spec.Pool, IsAvailable: snap.readyWorkers(spec.ID, jobs.LaneSync) > 0,
		InferenceMethods: []string{"sync", "async"}, InputFields: []jobs.Field{}, Type: "unknown"}
	if info := snap.info[spec.ID]; info != nil {
		out.Type, out.ModelRevision, out.InputFields = info.Task, info.Revision, info.Schema.Fields
		if len(info.InferenceMethods) > 0 {
			out.InferenceMethods = info.InferenceMethods
		}
	}
	return out
}

func (s *Server) lookupModel(c echo.Context) (*snapshot, registry.Spec, error) {
	snap := s.state.get()
	spec, ok := snap.models[c.Param("id")]
	if !ok {
		return snap, spec, errorf(CodeModelNotFound, "Model %s not found.", c.Param("id"))
	}
	return snap, spec, nil
}

// listModels answers GET /api/v1/models.
func (s *Server) listModels() echo.HandlerFunc {
	return func(c echo.Context) error {
		snap := s.state.get()
		out := make([]modelInfo, 0, len(snap.order))
		for _, id := range snap.order {
			out = append(out, describeModel(snap, snap.models[id]))
		}
		return c.JSON(http.StatusOK, map[string]any{"models": out})
	}
}

// getModelInfo answers GET /api/v1/models/:id/info.
func (s *Server) getModelInfo() echo.HandlerFunc {
	return func(c echo.Context) error {
		snap, spec, err := s.lookupModel(c)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, describeModel(snap, spec))
	}
}

// getModelHealth answers GET /api/v1/models/:id/health from worker heartbeats.
func (s *Server) getModelHealth() echo.HandlerFunc {
	return func(c echo.Context) error {
		snap, spec, err := s.lookupModel(c)
		if err != nil {
			return err
		}
		n := snap.readyWorkers(spec.ID, jobs.LaneSync)
		out := modelHealth{ModelID: spec.ID, Status: "unhealthy", IsCached: snap.cached(spec.ID),
			StorageType: storage(spec), InferenceReady: n > 0, ReadyWorkers: n}
		if n > 0 {
			out.Status = "healthy"
		}
		return c.JSON(http.StatusOK, out)
	}
}
