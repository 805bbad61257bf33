// Package logging builds the process's *slog.Logger: JSON lines by default,
// text for people at a terminal. It imports nothing of the project.
package logging
