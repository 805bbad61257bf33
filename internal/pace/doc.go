// Package pace breaks long runs of background work (a batch upload being
// split, a million result rows being rendered) into short bursts that step
// aside while latency-sensitive work is in flight, so a partner's request
// finds a free core instead of queueing behind the batch for a scheduler
// slice (milliseconds on a 250 Hz kernel). It imports only the standard
// library.
package pace
