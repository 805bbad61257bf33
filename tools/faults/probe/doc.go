// Command probe runs one fault against a real stack on loopback (redis-server,
// redis-sentinel, bin/hokusai-api and bin/hokusai-worker as processes) under
// a bounded load, and prints one row: requests sent, accepted, lost,
// duplicated, errors by status, time to recover. `make faults` runs it
// through tools/faults/*.sh.
//
//	probe sentinel none|replicas:1   kill -9 the Sentinel master under async load
//	probe aof everysec|always        kill -9 Redis (AOF on) under async load, restart it
//	probe maxmemory                  flood async jobs into a small noeviction Redis
//	probe slowloris                  slow clients beside sync predicts
//
// Every load loop is bounded in time and count; everything listens on
// 127.0.0.1. It imports redisproc and queue of the project, never api or
// worker: it drives the binaries as an operator would.
package main
