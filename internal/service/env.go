package service

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Env reads variables through getenv and collects every parse error.
type Env struct {
	getenv func(string) string
	errs   []error
}

// NewEnv wraps getenv (os.Getenv in main, a map in tests).
func NewEnv(getenv func(string) string) *Env { return &Env{getenv: getenv} }

// String returns the variable or def when unset or empty.
func (e *Env) String(name, def string) string {
	if v := e.getenv(name); v != "" {
		return v
	}
	return def
}

// Duration parses a Go duration ("30s", "24h"); unset gives def.
func (e *Env) Duration(name string, def time.Duration) time.Duration {
	v := e.getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q is not a duration like 30s or 24h", name, v))
		return def
	}
	return d
}

// Int parses an integer; unset gives def.
func (e *Env) Int(name string, def int64) int64 {
	v := e.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q is not a whole number", name, v))
		return def
	}
	return n
}

// Bool parses 1/true/yes or 0/false/no; unset gives def.
func (e *Env) Bool(name string, def bool) bool {
	switch v := e.getenv(name); v {
	case "":
		return def
	case "1", "true", "yes":
		return true
	case "0", "false", "no":
		return false
	default:
		e.errs = append(e.errs, fmt.Errorf("%s=%q is not 1/true/yes or 0/false/no", name, v))
		return def
	}
}

// Err joins every parse error so far.
func (e *Env) Err() error { return errors.Join(e.errs...) }
