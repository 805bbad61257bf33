// Package probe is the `healthcheck` subcommand both binaries carry, since
// minimal images have no curl. It imports nothing of the project.
package probe
