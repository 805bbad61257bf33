package jobs

// Fair admission of async jobs (internal/queue's fair.go): each tenant has
// at most a window of jobs in a pool's async queue at once; the rest wait,
// in order, until one of its own is done.
//
//	hokusai:fair:{POOL}:TENANT:admitted  sorted set: ids in the async queue (queued or running), scored by admission (Unix ms)
//	hokusai:fair:{POOL}:TENANT:held      list: ids waiting for room, oldest first
//	hokusai:fair:{POOL}:TENANT:window    string: the tenant's window, as the API last computed it
//	hokusai:fair:{POOL}:held:ID          string: a waiting job's task, as asynq encodes it, until it is queued
//	hokusai:fair:{POOL}:tenants          set: tenants that may have jobs waiting

// FairKeys are one tenant's admission keys in pool: admitted, held, window.
func FairKeys(pool, tenant string) [3]string {
	p := keyPrefix + "fair:{" + pool + "}:" + tenant + ":"
	return [3]string{p + "admitted", p + "held", p + "window"}
}

// HeldPrefix begins the key of each of pool's waiting jobs; HeldKey is one.
func HeldPrefix(pool string) string         { return keyPrefix + "fair:{" + pool + "}:held:" }
func HeldKey(pool, requestID string) string { return HeldPrefix(pool) + requestID }

// FairTenantsKey is the set of pool's tenants that may have jobs waiting.
func FairTenantsKey(pool string) string { return keyPrefix + "fair:{" + pool + "}:tenants" }
