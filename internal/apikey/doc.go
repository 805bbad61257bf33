// Package apikey issues, looks up and revokes API keys. Only a key's SHA-256
// hash is stored in Redis; the key itself is shown once, at creation. It
// imports nothing of the project.
package apikey
