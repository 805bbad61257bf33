// Package cmdtest helps tests of the binaries' run functions: it runs one in
// the background and finds the address it logged. It imports nothing of the
// project.
package cmdtest
