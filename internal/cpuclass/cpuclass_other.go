//go:build !linux

package cpuclass

import "errors"

func setIdle() error { return errors.New("the idle CPU class needs Linux") }

func yield() {}
