// Package batchfile reads and writes the files of batch scoring: it splits
// uploaded CSV and JSONL bodies into records as they stream in, turns one
// record into a validated row of a model's schema, and encodes a chunk's
// results compactly for Redis, rendering them back as CSV or JSONL.
//
// Both tiers use it: the API to split uploads and stream results, workers to
// decode rows and store results. It imports only jobs and the standard
// library, never api/, worker/ or Redis.
package batchfile
