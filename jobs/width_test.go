package jobs

import (
	"encoding/json"
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

// FuzzCheckWidth: on valid JSON, the width check refuses exactly the
// inputs in which a decoded row has more fields than the bound (3 here, so
// that rows over it are cheap to build: n fields holding the fuzzed value).
func FuzzCheckWidth(f *testing.F) {
	f.Add(`{"a": 1}`, uint8(3), false)
	f.Add(`"x\"y:{"`, uint8(4), true)
	f.Add(`[1, {"b": {"c": 2}}]`, uint8(5), true)
	const most = 3
	f.Fuzz(func(t *testing.T, value string, n uint8, list bool) {
		if !json.Valid([]byte(value)) {
			return
		}
		raw := object(int(n%8), value)
		if list {
			raw = "[{}, " + raw + "]"
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
