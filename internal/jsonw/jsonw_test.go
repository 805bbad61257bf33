package jsonw

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

func TestStringMatchesEncodingJSON(t *testing.T) {
	cases := []string{"", "Hot", "Demo requested (+)", `say "hi"`, `a\b`, "<script>&", "tab\there",
		"\x00\x1f\x7f", "café", "\u2028\u2029", "bad \xff utf-8", "emoji 😀"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		want, _ := json.Marshal(s)
		if got := String([]byte("x"), s); string(got) != "x"+string(want) {
			t.Fatalf("%q: got %s, want %s", s, got[1:], want)
		}
	}
}

func TestFloatMatchesEncodingJSON(t *testing.T) {
	cases := []float64{0, math.Copysign(0, -1), 1, -1, 0.5, 1e-6, 9.99999e-7, 1e-7, 1e20, 1e21, 123456789.125,
		0.1 + 0.2, math.MaxFloat64, math.SmallestNonzeroFloat64, -3.5e-300, 1.0 / 3}
	r := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		f := math.Float64frombits(r.Uint64())
		if !math.IsNaN(f) && !math.IsInf(f, 0) {
			cases = append(cases, f)
		}
		cases = append(cases, r.Float64(), r.NormFloat64()*1e-5)
	}
	for _, f := range cases {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Float(nil, f)
		if err != nil || string(got) != string(want) {
			t.Fatalf("%v: got %s (%v), want %s", f, got, err, want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := Float(nil, f); err == nil {
			t.Errorf("%v: no error", f)
		}
	}
}
