package jobs

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// CodeInvalidInput is the error code of inputs that cannot be scored, the
// 422 of the API and the stored failure of a job.
const CodeInvalidInput = "invalid_input"

// Inputs are a predict request's parsed "inputs".
type Inputs struct {
	Rows []Row
	// List is set when "inputs" was a list of rows, not one object.
	List bool
	// Warnings say what lax parsing assumed; each names its row in a list.
	Warnings []Warning
}

// ParseInputs reads a predict request's "inputs" (one object, or a list of
// 1 to max objects) against schema. Both tiers call it, the API to refuse
// bad input before it is queued and the worker to score it, so they cannot
// disagree on what is valid.
func ParseInputs(schema *Schema, raw json.RawMessage, max int, m Mode) (Inputs, *Error) {
	var in Inputs
	if err := MissingInputs(raw); err != nil {
		return in, err
	}
	raw = bytes.TrimSpace(raw)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var objs []map[string]any
	if raw[0] == '[' {
		in.List = true
		if err := dec.Decode(&objs); err != nil {
			return in, notObjects()
		}
		if len(objs) == 0 || len(objs) > max {
			return in, &Error{Code: CodeInvalidInput, Detail: fmt.Sprintf(`"inputs" must hold 1 to %d rows, not %d; send more as a batch.`, max, len(objs))}
		}
	} else {
		var one map[string]any
		if err := dec.Decode(&one); err != nil {
			return in, notObjects()
		}
		objs = []map[string]any{one}
	}
	in.Rows = make([]Row, len(objs))
	var all []FieldError
	for i, obj := range objs {
		if obj == nil {
			return Inputs{List: in.List}, notObjects()
		}
		row, errs, warns := schema.Parse(obj, m)
		for _, e := range errs {
			if in.List {
				e.Row = &i
			}
			all = append(all, e)
		}
		for _, w := range warns {
			if in.List {
				w.Row = &i
			}
			in.Warnings = append(in.Warnings, w)
		}
		in.Rows[i] = row
	}
	if all != nil {
		return Inputs{List: in.List}, &Error{Code: CodeInvalidInput, Detail: "Some inputs do not match the model's schema.", Fields: all}
	}
	return in, nil
}

// MissingInputs is the error of a request without "inputs" (raw absent or
// null), or nil: a check that needs no schema.
func MissingInputs(raw json.RawMessage) *Error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return &Error{Code: CodeInvalidInput, Detail: `The body needs "inputs": an object, or a list of objects.`,
			Fields: []FieldError{{Field: "inputs", Code: CodeMissingField, Detail: "is required"}}}
	}
	return nil
}

func notObjects() *Error {
	return &Error{Code: CodeInvalidInput, Detail: `"inputs" must be an object or a list of objects.`}
}
