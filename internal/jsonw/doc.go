// Package jsonw appends JSON values to byte slices, writing exactly what
// encoding/json's Marshal writes for the same value, for hot paths that
// build a response by hand instead of through reflection (and the
// re-scan Marshal gives every MarshalJSON result and json.RawMessage).
// It imports only the standard library.
package jsonw
