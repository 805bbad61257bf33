// Package jobs is the contract between the API tier and the workers: task type
// names, queue names, payloads, results, the completion message, and the input
// schema a model publishes so the API can validate requests without linking any
// model code.
//
// Both tiers import jobs; jobs imports only asynq, uuid and the standard
// library, never api/, worker/ or internal/.
package jobs
