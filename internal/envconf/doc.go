// Package envconf reads configuration from the environment with defaults and
// errors that name the variable. It imports nothing of the project.
package envconf
