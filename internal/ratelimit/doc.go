// Package ratelimit counts requests against per-key and per-tenant quotas in
// Redis with GCRA (the generic cell rate algorithm): a limit of N per period
// lets N requests through at once and then one every period/N, and every
// API process shares the count exactly, since one script decides. It
// writes the IETF RateLimit-Policy and RateLimit headers. It imports
// nothing of the project.
package ratelimit
