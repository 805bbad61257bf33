// Package objstoretest serves an S3 store on loopback for tests: gofakes3,
// which speaks the S3 wire protocol, over a real HTTP listener, so the
// SDK's own client, signing and path-style addressing are exercised.
//
// New starts one with the buckets given and returns the worker's client of
// it, signing with static test credentials (AccessKey, SecretKey, which
// tests check never reach a log). It is test support: non-test code never
// imports it.
package objstoretest
