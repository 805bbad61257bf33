// Package tenant holds per-tenant secrets: the key that signs a tenant's
// batch webhooks, created on first use and kept in Redis, and the
// signature scheme (X-Hokusai-Signature: sha256=<hex HMAC-SHA256 of the
// body>). It imports nothing of the project.
package tenant
