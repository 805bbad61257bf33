package service

import "testing"

func TestEnvBool(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "no", "C": "maybe"}
	e := NewEnv(func(k string) string { return vars[k] })
	if !e.Bool("A", false) || e.Bool("B", true) || !e.Bool("UNSET", true) || e.Err() != nil {
		t.Fatal("1, no or unset read wrong")
	}
	if e.Bool("C", false) || e.Err() == nil {
		t.Error("C=maybe read without an error")
	}
}
