// Package redisproc runs a private redis-server on a free loopback port, for
// `hokusai dev` and for tests. It imports nothing of the project.
package redisproc
