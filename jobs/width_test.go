package jobs

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// object is a JSON object of n fields, each value v.
func object(n int, v string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strconv.Itoa(i) + `":` + v)
	}
	return b.String() + "}"
}

func TestCheckWidth(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  string
		wide bool
	}{
		{"at the bound", object(MaxRowFields, "1"), false},
		{"over it", object(MaxRowFields+1, "1"), true},
		{"a list, the second row over", "[" + object(2, "1") + ", " + object(MaxRowFields+1, "null") + "]", true},
		{"a list of rows at the bound", " [" + object(MaxRowFields, "1") + "," + object(MaxRowFields, "1") + "]", false},
		{"nested fields do not count", `{"a": ` + object(MaxRowFields+1, "1") + `}`, false},
		{"colons in strings do not count", `{"a": "` + strings.Repeat(`:\":{`, MaxRowFields+1) + `"}`, false},
		{"not JSON is left to the decoder", strings.Repeat(":", MaxRowFields+1), false},
	} {
		if got := CheckWidth([]byte(tc.raw)) != nil; got != tc.wide {
			t.Errorf("%s: wide %v, want %v", tc.name, got, tc.wide)
		}
	}
}

// fuzzedRows is a row of n%8 fields holding value, alone or, when list,
// in listFormat; ok is false when value is not JSON.
func fuzzedRows(value string, n uint8, list bool, listFormat string) (raw string, ok bool) {
	if !json.Valid([]byte(value)) {
		return "", false
	}
	raw = object(int(n%8), value)
	if list {
		raw = fmt.Sprintf(listFormat, raw)
	}
	return raw, true
}

// FuzzCheckWidth: on valid JSON, the width check refuses exactly the
// inputs in which a decoded row has more fields than the bound (3 here, so
// that rows over it are cheap to build: n fields holding the fuzzed value).
func FuzzCheckWidth(f *testing.F) {
	f.Add(`{"a": 1}`, uint8(3), false)
	f.Add(`"x\"y:{"`, uint8(4), true)
	f.Add(`[1, {"b": {"c": 2}}]`, uint8(5), true)
	const most = 3
	f.Fuzz(func(t *testing.T, value string, n uint8, list bool) {
		raw, ok := fuzzedRows(value, n, list, "[{}, %s]")
		if !ok {
			return
		}
		var rows []map[string]json.RawMessage
		if list {
			if json.Unmarshal([]byte(raw), &rows) != nil {
				return
			}
		} else {
			var one map[string]json.RawMessage
			if json.Unmarshal([]byte(raw), &one) != nil {
				return
			}
			rows = append(rows, one)
		}
		wide := false
		for _, r := range rows {
			wide = wide || len(r) > most
		}
		if got := checkWidth([]byte(raw), most) != nil; got != wide {
			t.Fatalf("checkWidth says wide=%v of %d fields of %q, decoded rows say %v", got, n%8, value, wide)
		}
	})
}

func TestCheckBodyWidth(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  string
		wide bool
	}{
		{"a row at the bound", `{"inputs": ` + object(MaxRowFields, "1") + `}`, false},
		{"a row over it", `{"inputs": ` + object(MaxRowFields+1, "1") + `}`, true},
		{"the second of a list over it", `{"inputs": [{}, ` + object(MaxRowFields+1, "[]") + `]}`, true},
		{"options over it", `{"inputs": {}, "options": ` + object(MaxRowFields+1, `"x"`) + `}`, true},
		{"the envelope over it", object(MaxRowFields+1, "{}"), true},
		{"deep inside a value", `{"inputs": {"a": [[[[[[[[[[[[[[[[[[` + object(MaxRowFields+1, "1") + `]]]]]]]]]]]]]]]]]}}`, true},
		{"many narrow objects", `{"inputs": [` + strings.Repeat(object(MaxRowFields, "1")+",", 3) + `{}]}`, false},
		{"colons in strings do not count", `{"inputs": {"a": "` + strings.Repeat(`:\":{`, MaxRowFields+1) + `"}}`, false},
		{"not JSON is left to the decoder", strings.Repeat("}:", MaxRowFields+1), false},
	} {
		if got := CheckBodyWidth([]byte(tc.raw)) != nil; got != tc.wide {
			t.Errorf("%s: wide %v, want %v", tc.name, got, tc.wide)
		}
	}
}

// widest is the most members of any object in v, a decoded JSON value.
func widest(v any) int {
	most := 0
	switch v := v.(type) {
	case map[string]any:
		most = len(v)
		for _, e := range v {
			most = max(most, widest(e))
		}
	case []any:
		for _, e := range v {
			most = max(most, widest(e))
		}
	}
	return most
}

// FuzzCheckBodyWidth: on valid JSON with distinct keys, the body check
// refuses exactly the bodies in which a decoded object has more members
// than the bound (3 here).
func FuzzCheckBodyWidth(f *testing.F) {
	f.Add(`{"a": 1}`, uint8(3), false)
	f.Add(`{"a": {"b": 1, "c": 2, "d": 3, "e": 4}}`, uint8(1), true)
	f.Add(`[1, {"b": {"c": "}"}}]`, uint8(5), true)
	const most = 3
	f.Fuzz(func(t *testing.T, value string, n uint8, list bool) {
		raw, ok := fuzzedRows(value, n, list, `{"inputs": [{}, %s]}`)
		if !ok {
			return
		}
		var v any
		if json.Unmarshal([]byte(raw), &v) != nil {
			return
		}
		if hasDuplicateKeys([]byte(raw)) {
			return // the decoder keeps one of each; the check counts them as written
		}
		if got, want := checkBodyWidth([]byte(raw), most) != nil, widest(v) > most; got != want {
			t.Fatalf("checkBodyWidth says wide=%v of %q, the decoded value says %v", got, raw, want)
		}
	})
}

// hasDuplicateKeys reports whether some object in raw (valid JSON) repeats
// a key.
func hasDuplicateKeys(raw []byte) bool {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	type frame struct {
		object, wantKey bool
		seen            map[string]bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if s, ok := tok.(string); ok && top != nil && top.object && top.wantKey {
			if top.seen[s] {
				return true
			}
			top.seen[s] = true
			top.wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, wantKey: true, seen: map[string]bool{}})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].wantKey = true
		}
	}
}
