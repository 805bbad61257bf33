// Package service sets up what both server binaries share: the -redis-url,
// -log-format and -log-level flags with their environment defaults, the
// logger, the Redis client and tracing. It imports only internal plumbing
// (envconf, logging, redisconn, telemetry), never api/ or worker/.
package service
