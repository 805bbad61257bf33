// Package schedule holds recurring S3 batches: their definitions in Redis,
// the cron and time-zone rules that say when each runs, the {{date}}
// templates of their locations, and the claim that makes each scheduled
// time fire once however many API processes look for due schedules.
//
// It knows no HTTP and no S3 client (the API links it); it must never
// import api/ or worker/.
package schedule
