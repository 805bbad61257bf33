// Package objstore is the worker's S3 client (aws-sdk-go-v2 service/s3,
// the standard credential chain): ranged reads of a batch's input, and
// multipart uploads of its output. S3-compatible stores (MinIO, R2, a
// local server) are reached through the SDK's own AWS_ENDPOINT_URL_S3 or
// AWS_ENDPOINT_URL, with path-style addressing whenever one is set.
//
// Errors name the operation, S3's error code and message, never a
// credential. Only the worker tier imports this package: the API must
// not link the S3 client (a depguard rule and cmd/hokusai-api's
// dependency test say so).
package objstore
