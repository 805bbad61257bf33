// Package usage meters what each tenant used, per API key, per model and
// per UTC day: requests and error answers (counted by the API), rows scored,
// batch rows scored and failed, and compute time (counted by workers). A
// Meter adds in memory on the hot path and flushes to Redis in one pipelined
// transaction every interval and when it stops; Read gives a tenant's days
// back. It imports nothing of the project.
package usage
