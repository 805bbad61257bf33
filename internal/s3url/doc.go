// Package s3url reads s3://bucket/key locations and decides whether a
// tenant may use one: the operators' allow-list (HOKUSAI_S3_ALLOW) plus
// the tenant's own additions in Redis. Both tiers check: the API when a
// batch is submitted, the worker again before it reads or writes.
//
// It knows no S3 client: the API links it, and must never link the SDK's.
package s3url
