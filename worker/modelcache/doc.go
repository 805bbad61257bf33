// Package modelcache holds loaded models in memory, keyed by (repo, revision).
//
// A Cache is generic over the loaded value. It is an LRU bounded in bytes: the
// loader reports each value's size, and the least recently used entries are
// evicted when a new one would push the total over the budget
// (HOKUSAI_MODEL_CACHE_BYTES in the worker's config). Concurrent first requests
// for one key share a single load, so a burst of N callers triggers exactly one
// download-and-parse. Warm loads a list of keys before the worker consumes jobs.
// Stats reports hits, misses, evictions, loads and resident bytes so the worker
// can export them as metrics.
//
// The package holds only the cache mechanics: it knows nothing about the Hub,
// model formats, Redis or asynq, and must never import api/.
package modelcache
