package jobs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// PredictOptions are the "options" of a predict request.
type PredictOptions struct {
	// Explain asks for factors, the features behind each score (TreeSHAP).
	// Default true; false skips them, which makes scoring several times
	// cheaper.
	Explain *bool `json:"explain,omitempty"`
	// Strict refuses inputs that lax parsing would score with a warning
	// (see Mode). Default false.
	Strict bool `json:"strict,omitempty"`
	// AsOf is the reference time of timeline inputs, an ISO date
	// ("2025-06-01", midnight UTC) or an RFC 3339 time; default: when the
	// request arrived.
	AsOf string `json:"as_of,omitempty"`

	asOf time.Time
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
		return o, fmt.Errorf("options must be an object with only the known keys (explain and strict: true or false; as_of: a date): %v", err)
	}
	if o.AsOf != "" {
		t, err := ParseAsOf(o.AsOf)
		if err != nil {
			return o, err
		}
		o.asOf = t
	}
	return o, nil
}

// ParseAsOf reads a reference time for timelines: an ISO date (midnight
// UTC) or an RFC 3339 time.
func ParseAsOf(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("as_of %s is not a date (2025-06-01) or an RFC 3339 time (2025-06-01T09:00:00Z)", quote(s))
}

// WantExplain reports whether factors were asked for (the default).
func (o PredictOptions) WantExplain() bool { return o.Explain == nil || *o.Explain }

// Mode is how to read the request's inputs; received is when the request
// arrived, the reference time of timelines unless the options name one.
func (o PredictOptions) Mode(received time.Time) Mode {
	m := Mode{Strict: o.Strict, AsOf: o.asOf}
	if m.AsOf.IsZero() {
		m.AsOf = received
	}
	return m
}
