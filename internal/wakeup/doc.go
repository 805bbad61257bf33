// Package wakeup is the signal that spares idle workers from polling: after
// enqueueing work on a pool's lane, the enqueuer pushes to that lane's wake
// list, on which idle workers of the pool that consume the lane block
// (queue.DequeueHook). It imports only jobs/ and go-redis.
package wakeup
