// Package redisproc runs a private redis-server (or redis-sentinel) on a
// free loopback port, for `hokusai dev`, tests and the fault probes. It imports nothing of the project.
package redisproc
