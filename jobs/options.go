package jobs

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// PredictOptions are the "options" of a predict request.
type PredictOptions struct {
	// Explain asks for factors, the features behind each score (TreeSHAP).
	// Default true; false skips them, which makes scoring several times
	// cheaper.
	Explain *bool `json:"explain,omitempty"`
}

// ParseOptions reads a request's options; absent or null means defaults.
// Unknown options are refused so a typo is not silently ignored.
func ParseOptions(raw json.RawMessage) (PredictOptions, error) {
	var o PredictOptions
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return o, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return o, fmt.Errorf("options must be an object with only the known keys (explain: true or false): %v", err)
	}
	return o, nil
}

// WantExplain reports whether factors were asked for (the default).
func (o PredictOptions) WantExplain() bool { return o.Explain == nil || *o.Explain }
