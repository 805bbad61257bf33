// Package leadgen writes realistic synthetic lead files for the demo lead
// scoring model (model 21): the CLI's `batch gen-leads`, the batch tests and
// benchmarks use it. It imports only the standard library.
package leadgen
