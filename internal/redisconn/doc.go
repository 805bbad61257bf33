// Package redisconn opens the one go-redis client a process uses, for a
// single Redis (redis://, rediss://) or one behind Sentinel
// (redis-sentinel://), from a URL. Redis Cluster has no URL form: several
// of the project's scripts and transactions span keys of different hash
// slots (issue 18). It imports nothing of the project.
package redisconn
