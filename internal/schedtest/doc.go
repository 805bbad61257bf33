// Package schedtest holds the schedules' acceptance test: a schedule that
// runs every minute, with two API processes and two workers on one Redis,
// starts exactly one S3 batch a minute for three minutes. It takes over
// three minutes, so it has a package of its own, which `go test ./...`
// runs beside internal/stacktest. It has no code outside tests.
package schedtest
