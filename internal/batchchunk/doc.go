// Package batchchunk stores a batch's rows as chunks and queues their
// tasks within the batch's window. The API uses it for an uploaded file,
// the worker for an object it reads from S3: one protocol, so the chunk
// tasks cannot tell the two apart.
//
// It imports jobs, internal/queue, asynq and go-redis; never api or worker.
package batchchunk
