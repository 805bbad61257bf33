// Package redisconn opens the one go-redis client a process uses, for single,
// Sentinel or Cluster Redis, from a URL. It imports nothing of the project.
package redisconn
