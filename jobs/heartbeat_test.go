package jobs

import (
	"encoding/json"
	"testing"
)

// A worker is ready for a model on the lanes it names; one that names none
// (from before heartbeats carried lanes) takes every lane.
func TestHeartbeatReadyByLane(t *testing.T) {
	loaded := []ModelStatus{{ID: "21", Loaded: true}, {ID: "22"}}
	var old Heartbeat
	if err := json.Unmarshal([]byte(`{"worker_id":"w0","pool":"default","state":"ready","models":[{"id":"21","loaded":true}]}`), &old); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		hb    Heartbeat
		model string
		want  map[Lane]bool
	}{
		{"no lanes named", old, "21", map[Lane]bool{LaneSync: true, LaneAsync: true, LaneBatch: true}},
		{"batch only", Heartbeat{State: StateReady, Models: loaded, Lanes: []Lane{LaneBatch}}, "21",
			map[Lane]bool{LaneSync: false, LaneAsync: false, LaneBatch: true}},
		{"sync and async", Heartbeat{State: StateReady, Models: loaded, Lanes: []Lane{LaneSync, LaneAsync}}, "21",
			map[Lane]bool{LaneSync: true, LaneAsync: true, LaneBatch: false}},
		{"model not loaded", Heartbeat{State: StateReady, Models: loaded, Lanes: Lanes}, "22",
			map[Lane]bool{LaneSync: false, LaneAsync: false, LaneBatch: false}},
		{"not ready", Heartbeat{State: StateNotReady, Models: loaded}, "21",
			map[Lane]bool{LaneSync: false, LaneAsync: false, LaneBatch: false}},
	} {
		for lane, want := range tc.want {
			if got := tc.hb.Ready(tc.model, lane); got != want {
				t.Errorf("%s: Ready(%s, %s) = %t, want %t", tc.name, tc.model, lane, got, want)
			}
		}
	}
	b, err := json.Marshal(Heartbeat{Lanes: []Lane{LaneBatch}})
	if err != nil {
		t.Fatal(err)
	}
	var back Heartbeat
	if err := json.Unmarshal(b, &back); err != nil || len(back.Lanes) != 1 || back.Lanes[0] != LaneBatch {
		t.Errorf("lanes do not survive JSON: %s -> %+v (%v)", b, back.Lanes, err)
	}
}
