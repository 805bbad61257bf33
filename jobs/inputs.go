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
	if fe := CheckWidth(raw); fe != nil {
		return in, widthError(fe)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var single [1]map[string]any // one object needs no list on the heap
	objs := single[:]
	if raw[0] == '[' {
		in.List = true
		list, err := decodeList(dec)
		if err != nil {
			return in, notObjects()
		}
		if len(list) == 0 || len(list) > max {
			return in, &Error{Code: CodeInvalidInput, Detail: fmt.Sprintf(`"inputs" must hold 1 to %d rows, not %d; send more as a batch.`, max, len(list))}
		}
		objs = list
	} else if err := dec.Decode(&single[0]); err != nil {
		return in, notObjects()
	}
	in.Rows = make([]Row, len(objs))
	var all []FieldError
	moreErrs, moreWarns := 0, 0
	for i, obj := range objs {
		if obj == nil {
			return Inputs{List: in.List}, notObjects()
		}
		row, errs, warns := schema.Parse(obj, m)
		for _, e := range errs {
			if len(all) == MaxReports {
				moreErrs++
				continue
			}
			e.Row = in.row(i)
			all = append(all, e)
		}
		for _, w := range warns {
			if len(in.Warnings) == MaxReports {
				moreWarns++
				continue
			}
			w.Row = in.row(i)
			in.Warnings = append(in.Warnings, w)
		}
		in.Rows[i] = row
	}
	if all != nil {
		detail := "Some inputs do not match the model's schema."
		if moreErrs > 0 {
			detail = fmt.Sprintf("Some inputs do not match the model's schema; %d more errors are not listed.", moreErrs)
		}
		return Inputs{List: in.List}, &Error{Code: CodeInvalidInput, Detail: detail, Fields: all}
	}
	if moreWarns > 0 {
		in.Warnings = append(in.Warnings, Warning{Code: CodeMoreWarnings, Detail: fmt.Sprintf("and %d more warnings", moreWarns)})
	}
	return in, nil
}

// MaxReports bounds the errors, and the warnings, one request lists: past
// it they are counted, not listed, so an answer stays small whatever the
// request holds.
const MaxReports = 50

// CodeMoreWarnings ends a list of warnings that reached MaxReports.
const CodeMoreWarnings = "more_warnings"

func decodeList(dec *json.Decoder) ([]map[string]any, error) {
	var list []map[string]any
	err := dec.Decode(&list)
	return list, err
}

// row is what a report of row i says of its row: its number in a list,
// nothing for a single object.
func (in *Inputs) row(i int) *int {
	if !in.List {
		return nil
	}
	return &i
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
