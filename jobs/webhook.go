package jobs

// Batch webhooks waiting to be delivered, by pool. Workers of the pool that
// consume its batch lane deliver them from goroutines of their own, never
// inside a task, so a dead callback_url holds no task slot; a delivery
// stays in these sets until it succeeds, runs out of attempts or its batch
// expires, so a worker that stops or dies mid-delivery loses nothing.
// Both keys share the hash tag {pool}, so one script touches both on one
// Redis Cluster node.
//
//	hokusai:webhook:{pool}:tenants      sorted set: tenants with a pending delivery, scored by the earliest due time among them (Unix ms)
//	hokusai:webhook:{pool}:due:TENANT   sorted set: batch ids of the tenant's pending deliveries, scored by when each is due (Unix ms); one being attempted is scored by the end of its worker's lease
//
// A batch's attempts stay under its own hash tag (BatchHooksKey); the
// tenant set lets a worker take every tenant's earliest deliveries without
// reading past one tenant's thousands.
func webhookBase(pool string) string { return keyPrefix + "webhook:{" + pool + "}" }

// WebhookTenantsKey is pool's set of tenants with a webhook pending.
func WebhookTenantsKey(pool string) string { return webhookBase(pool) + ":tenants" }

// WebhookDueKey is the set of tenant's pending webhooks in pool, by batch id.
func WebhookDueKey(pool, tenant string) string { return webhookBase(pool) + ":due:" + tenant }
