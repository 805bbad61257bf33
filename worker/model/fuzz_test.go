package model

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// FuzzParseConfig feeds arbitrary bytes to the config.json parser: it must
// return an error or a spec whose schema validates and encodes, never panic.
func FuzzParseConfig(f *testing.F) {
	demo, err := os.ReadFile(filepath.Join(demoDir, ConfigFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(demo)
	f.Add([]byte(`{"hokusai": {"task": "classification", "model_file": "m.txt", "features": [{"name": "a", "type": "text", "rules": [{"keywords": ["x y"], "code": 1}]}], "head": {"classes": ["n", "y"]}}}`))
	f.Add([]byte(`{"hokusai": {"task": "regression", "model_file": "m.ubj", "features": [{"name": "a", "type": "category", "values": {"A": 1}, "default": "a"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseConfig(data)
		if err != nil {
			return
		}
		if len(s.features) != len(s.schema.Fields) {
			t.Fatalf("%d encoders for %d fields", len(s.features), len(s.schema.Fields))
		}
		// Every field's default (or absence) must validate and encode.
		row, errs, _ := s.schema.Parse(map[string]any{}, strictNow)
		if errs != nil {
			for _, e := range errs {
				if e.Code != jobs.CodeMissingField {
					t.Fatalf("empty input: %v", errs)
				}
			}
			return
		}
		m := &Model{spec: *s}
		x := make([]float32, len(s.features))
		if err := m.Encode(row, x); err != nil {
			t.Fatalf("encode defaults: %v", err)
		}
	})
}

// FuzzTextRule checks the allocation-free keyword matcher against the
// obvious one (split both into words, look for the keyword's words in a
// row) on ASCII text, where lower-casing and case folding agree.
func FuzzTextRule(f *testing.F) {
	f.Add("VP of Sales", "vice president")
	f.Add("Sr. Director, IT", "director it")
	f.Add("cto", "c t o")
	f.Fuzz(func(t *testing.T, text, keyword string) {
		kw := splitWords(keyword)
		if len(kw) == 0 || !isASCII(text) || !isASCII(keyword) {
			return
		}
		e := encoder{rules: []compiledRule{{words: kw, code: 1}}}
		words := splitWords(text)
		want := float32(0)
		for i := 0; i+len(kw) <= len(words); i++ {
			if slices.Equal(words[i:i+len(kw)], kw) {
				want = 1
			}
		}
		if got := e.textCode(text); got != want {
			t.Fatalf("textCode(%q) with keyword %q = %v, want %v", text, keyword, got, want)
		}
	})
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
