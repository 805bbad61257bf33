// Package redistest gives a test package its own redis-server on a free
// loopback port, or the server REDIS_URL names. With CI set and no server to
// be had it fails loudly instead of skipping. It imports only redisproc.
package redistest
