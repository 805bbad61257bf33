package batchfile

import "bufio"

// FailedOnly is a Renderer of the failed rows alone: an errors file. Each
// row keeps its number and id, with its error's code and detail; the
// result columns are left out, as a failed row has none.
type FailedOnly struct{ Renderer }

// Header writes the wrapped Renderer's header without result columns.
func (f FailedOnly) Header(w *bufio.Writer, _ []Column) error { return f.Renderer.Header(w, nil) }

// Row writes r if it failed.
func (f FailedOnly) Row(w *bufio.Writer, _ []Column, r *Result) error {
	if !r.Failed {
		return nil
	}
	return f.Renderer.Row(w, nil, r)
}
