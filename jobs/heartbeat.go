package jobs

import (
	"slices"
	"time"
)

// Worker states in a heartbeat.
const (
	StateStarting = "starting"
	StateReady    = "ready"
	StateNotReady = "not_ready"
	StateDraining = "draining"
)

// HeartbeatTTL is how long a heartbeat stays valid without renewal. Workers
// renew it every HeartbeatInterval.
const (
	HeartbeatTTL      = 5 * time.Second
	HeartbeatInterval = time.Second
)

// WorkersKey is the sorted set of worker ids, scored by last heartbeat (Unix ms).
const WorkersKey = keyPrefix + "workers"

// HeartbeatKey holds one worker's latest heartbeat, expiring after HeartbeatTTL.
func HeartbeatKey(workerID string) string { return keyPrefix + "worker:" + workerID }

// Heartbeat is what a worker says of itself every HeartbeatInterval. It never
// carries a secret.
type Heartbeat struct {
	WorkerID string `json:"worker_id"`
	Pool     string `json:"pool"`
	Host     string `json:"host"`
	State    string `json:"state"`
	// Reasons are machine-readable causes of not_ready, such as
	// hf_token_missing or model_load_failed:21.
	Reasons []string      `json:"reasons,omitempty"`
	Models  []ModelStatus `json:"models"`
	// Lanes are the lanes of its pool the worker consumes; none means all
	// of them (a worker from before heartbeats named their lanes).
	Lanes []Lane `json:"lanes,omitempty"`
	// Slots is how many tasks the worker runs at once (0 from a worker
	// from before heartbeats said).
	Slots     int       `json:"slots,omitempty"`
	StartedAt time.Time `json:"started_at"`
	SeenAt    time.Time `json:"seen_at"`
}

// Consumes reports whether the worker takes work from lane.
func (h *Heartbeat) Consumes(lane Lane) bool {
	return len(h.Lanes) == 0 || slices.Contains(h.Lanes, lane)
}

// ModelStatus is one model as a worker holds it.
type ModelStatus struct {
	ID       string `json:"id"`
	Revision string `json:"revision,omitempty"`
	Loaded   bool   `json:"loaded"`
	Reason   string `json:"reason,omitempty"`
}

// Ready reports whether the worker takes work for model id on lane: a
// batch-only worker is no help to a sync call, nor the other way round.
func (h *Heartbeat) Ready(modelID string, lane Lane) bool {
	if h.State != StateReady || !h.Consumes(lane) {
		return false
	}
	for _, m := range h.Models {
		if m.ID == modelID {
			return m.Loaded
		}
	}
	return false
}

// ModelInfoKey holds what a worker published about a model it loaded.
func ModelInfoKey(modelID string) string { return keyPrefix + "modelinfo:" + modelID }

// ModelInfo is a loaded model's public contract, published by the worker that
// loaded it so the API can validate and describe without model code.
type ModelInfo struct {
	ID               string   `json:"id"`
	Name             string   `json:"name"`
	Task             string   `json:"task"`
	Revision         string   `json:"revision"`
	InferenceMethods []string `json:"inference_methods"`
	Schema           Schema   `json:"schema"`
}
