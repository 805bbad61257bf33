package tree

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// The XGBoost loaders decode JSON and UBJSON into one generic document and
// share the code that reads it. Values are:
//
//	map[string]any  object
//	[]any           array
//	[]float32, []float64, []int64   UBJSON typed arrays
//	string, bool, nil
//	jsonNumber      a JSON number kept as text, so float32 fields parse
//	                with float32 rounding and integers stay exact
//	float32, float64, int64        UBJSON scalars
//
// Own parsers rather than encoding/json because xgboost writes NaN and
// Infinity as bare words, which encoding/json rejects.

type jsonNumber string

// maxNesting bounds container nesting in both decoders; real models nest
// about eight levels deep.
const maxNesting = 128

var errNesting = errors.New("containers nested too deeply")

// parseJSON decodes one JSON value that must fill data (surrounding space
// allowed).
func parseJSON(data []byte) (any, error) {
	p := jsonParser{data: data}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos != len(p.data) {
		return nil, p.errorf("unexpected data after the top-level value")
	}
	return v, nil
}

type jsonParser struct {
	data []byte
	pos  int
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("json offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *jsonParser) space() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (any, error) {
	if depth > maxNesting {
		return nil, p.errorf("%v", errNesting)
	}
	p.space()
	if p.pos >= len(p.data) {
		return nil, p.errorf("unexpected end of input")
	}
	switch c := p.data[p.pos]; c {
	case '{':
		return p.object(depth)
	case '[':
		return p.array(depth)
	case '"':
		return p.str()
	default:
		return p.word()
	}
}

func (p *jsonParser) object(depth int) (any, error) {
	p.pos++ // '{'
	obj := map[string]any{}
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return obj, nil
	}
	for {
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.errorf("expected an object key")
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.errorf("expected ':' after key %q", key)
		}
		p.pos++
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		obj[key] = v
		p.space()
		if p.pos >= len(p.data) {
			return nil, p.errorf("unterminated object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return obj, nil
		default:
			return nil, p.errorf("expected ',' or '}' in object")
		}
	}
}

func (p *jsonParser) array(depth int) (any, error) {
	p.pos++ // '['
	arr := []any{}
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return arr, nil
	}
	for {
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
		p.space()
		if p.pos >= len(p.data) {
			return nil, p.errorf("unterminated array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return arr, nil
		default:
			return nil, p.errorf("expected ',' or ']' in array")
		}
	}
}

func (p *jsonParser) str() (string, error) {
	start := p.pos
	p.pos++ // opening quote
	escaped := false
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case '\\':
			escaped = true
			p.pos += 2
			continue
		case '"':
			p.pos++
			raw := p.data[start:p.pos]
			if !escaped {
				return string(raw[1 : len(raw)-1]), nil
			}
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", p.errorf("bad string: %v", err)
			}
			return s, nil
		}
		p.pos++
	}
	return "", p.errorf("unterminated string")
}

// word reads a bare token: true, false, null, or a number including NaN and
// the infinities.
func (p *jsonParser) word() (any, error) {
	start := p.pos
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		if c == '+' || c == '-' || c == '.' || (c >= '0' && c <= '9') || (c|0x20 >= 'a' && c|0x20 <= 'z') {
			p.pos++
			continue
		}
		break
	}
	tok := string(p.data[start:p.pos])
	switch tok {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "null":
		return nil, nil
	case "":
		return nil, p.errorf("unexpected character %q", p.data[p.pos])
	}
	if _, err := strconv.ParseFloat(tok, 64); err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil, fmt.Errorf("json offset %d: bad token %q", start, tok)
	}
	return jsonNumber(tok), nil
}

// member returns obj[key] where obj must be an object; path names the
// object in errors.
func member(v any, path, key string) (any, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s is not an object", path)
	}
	m, ok := obj[key]
	if !ok {
		return nil, fmt.Errorf("%s has no %q", path, key)
	}
	return m, nil
}

// optMember is member for optional keys: a missing key gives nil, nil.
func optMember(v any, path, key string) (any, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s is not an object", path)
	}
	return obj[key], nil
}

func asString(v any, what string) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s is not a string", what)
	}
	return s, nil
}

// asFloat64 reads a number, or a string holding one (xgboost writes many
// parameters as strings).
func asFloat64(v any, what string) (float64, error) {
	switch x := v.(type) {
	case jsonNumber:
		return strconv.ParseFloat(string(x), 64)
	case string:
		f, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not a number", what, x)
		}
		return f, nil
	case float32:
		return float64(x), nil
	case float64:
		return x, nil
	case int64:
		return float64(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	}
	return 0, fmt.Errorf("%s is not a number", what)
}

// asInt reads an integral number (or a string holding one) within [lo, hi].
func asInt(v any, what string, lo, hi int64) (int64, error) {
	f, err := asFloat64(v, what)
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
		return 0, fmt.Errorf("%s: %v is not an integer in [%d, %d]", what, f, lo, hi)
	}
	return int64(f), nil
}

// asFloat32s reads an array of numbers with float32 rounding.
func asFloat32s(v any, what string) ([]float32, error) {
	switch x := v.(type) {
	case []float32:
		return x, nil
	case []float64:
		out := make([]float32, len(x))
		for i, f := range x {
			out[i] = float32(f)
		}
		return out, nil
	case []int64:
		out := make([]float32, len(x))
		for i, n := range x {
			out[i] = float32(n)
		}
		return out, nil
	case []any:
		out := make([]float32, len(x))
		for i, e := range x {
			if n, ok := e.(jsonNumber); ok {
				f, err := strconv.ParseFloat(string(n), 32)
				if err != nil && !errors.Is(err, strconv.ErrRange) {
					return nil, fmt.Errorf("%s[%d]: %w", what, i, err)
				}
				out[i] = float32(f)
				continue
			}
			f, err := asFloat64(e, what)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", what, i, err)
			}
			out[i] = float32(f)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s is not an array of numbers", what)
}

// asInts reads an array of integers, each within [lo, hi].
func asInts(v any, what string, lo, hi int64) ([]int64, error) {
	check := func(i int, n int64) error {
		if n < lo || n > hi {
			return fmt.Errorf("%s[%d]: %d is outside [%d, %d]", what, i, n, lo, hi)
		}
		return nil
	}
	switch x := v.(type) {
	case []int64:
		for i, n := range x {
			if err := check(i, n); err != nil {
				return nil, err
			}
		}
		return x, nil
	case []float32, []float64:
		fs, _ := asFloat32s(x, what)
		out := make([]int64, len(fs))
		for i, f := range fs {
			n, err := asInt(float64(f), what, lo, hi)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", what, i, err)
			}
			out[i] = n
		}
		return out, nil
	case []any:
		out := make([]int64, len(x))
		for i, e := range x {
			n, err := asInt(e, what, lo, hi)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", what, i, err)
			}
			out[i] = n
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s is not an array of integers", what)
}
