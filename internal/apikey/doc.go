// Package apikey issues, looks up and revokes API keys and keeps their rate
// limits and their tenants'. Only a key's SHA-256 hash is stored in Redis;
// the key itself is shown once, at creation. Every change (create, revoke,
// limits) is recorded in a capped audit stream, in the change's own
// transaction, with its time and actor and the key's id, never the key. It
// imports nothing of the project.
package apikey
