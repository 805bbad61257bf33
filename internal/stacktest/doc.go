// Package stacktest holds the end-to-end tests of the whole stack: the API
// and a worker in-process, a real redis-server, a real HTTP listener and the
// demo model. It has no code of its own outside tests.
package stacktest
