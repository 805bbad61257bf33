package tree

import (
	"encoding/binary"
	"fmt"
	"math"
)

// parseUBJSON decodes one UBJSON (draft 12, as xgboost writes it) value into
// the generic document of document.go. Strongly typed numeric arrays
// ([$d#, [$l#, ...) become []float32, []float64 or []int64 without a
// per-element interface.
func parseUBJSON(data []byte) (any, error) {
	p := ubjParser{data: data}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.data) {
		return nil, p.errorf("unexpected data after the top-level value")
	}
	return v, nil
}

type ubjParser struct {
	data []byte
	pos  int
}

func (p *ubjParser) errorf(format string, args ...any) error {
	return fmt.Errorf("ubjson offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *ubjParser) byte() (byte, error) {
	if p.pos >= len(p.data) {
		return 0, p.errorf("unexpected end of input")
	}
	b := p.data[p.pos]
	p.pos++
	return b, nil
}

func (p *ubjParser) take(n int) ([]byte, error) {
	if n < 0 || n > len(p.data)-p.pos {
		return nil, p.errorf("need %d bytes, have %d", n, len(p.data)-p.pos)
	}
	b := p.data[p.pos : p.pos+n]
	p.pos += n
	return b, nil
}

// marker reads the next type marker, skipping no-op markers.
func (p *ubjParser) marker() (byte, error) {
	for {
		b, err := p.byte()
		if err != nil || b != 'N' {
			return b, err
		}
	}
}

// numSize is the payload size of a fixed-size numeric marker, 0 otherwise.
func numSize(m byte) int {
	switch m {
	case 'i', 'U', 'C':
		return 1
	case 'I':
		return 2
	case 'l', 'd':
		return 4
	case 'L', 'D':
		return 8
	}
	return 0
}

// integer reads the payload of an integer marker.
func (p *ubjParser) integer(m byte) (int64, error) {
	n := numSize(m)
	if n == 0 || m == 'd' || m == 'D' || m == 'C' {
		return 0, p.errorf("marker %q is not an integer type", m)
	}
	b, err := p.take(n)
	if err != nil {
		return 0, err
	}
	switch m {
	case 'i':
		return int64(int8(b[0])), nil
	case 'U':
		return int64(b[0]), nil
	case 'I':
		return int64(int16(binary.BigEndian.Uint16(b))), nil
	case 'l':
		return int64(int32(binary.BigEndian.Uint32(b))), nil
	default:
		return int64(binary.BigEndian.Uint64(b)), nil
	}
}

// length reads a marker plus integer used as a count or string length.
func (p *ubjParser) length() (int, error) {
	m, err := p.marker()
	if err != nil {
		return 0, err
	}
	n, err := p.integer(m)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > int64(len(p.data)) {
		return 0, p.errorf("length %d out of range", n)
	}
	return int(n), nil
}

func (p *ubjParser) str() (string, error) {
	n, err := p.length()
	if err != nil {
		return "", err
	}
	b, err := p.take(n)
	return string(b), err
}

func (p *ubjParser) value(depth int) (any, error) {
	m, err := p.marker()
	if err != nil {
		return nil, err
	}
	return p.typed(m, depth)
}

// typed reads the payload of a value whose marker m is already consumed.
func (p *ubjParser) typed(m byte, depth int) (any, error) {
	switch m {
	case 'Z':
		return nil, nil
	case 'T':
		return true, nil
	case 'F':
		return false, nil
	case 'i', 'U', 'I', 'l', 'L':
		return p.integer(m)
	case 'd':
		b, err := p.take(4)
		if err != nil {
			return nil, err
		}
		return math.Float32frombits(binary.BigEndian.Uint32(b)), nil
	case 'D':
		b, err := p.take(8)
		if err != nil {
			return nil, err
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
	case 'C':
		b, err := p.take(1)
		if err != nil {
			return nil, err
		}
		return string(b), nil
	case 'S':
		return p.str()
	case 'H':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return jsonNumber(s), nil
	case '[', '{':
		if depth >= maxNesting {
			return nil, p.errorf("%v", errNesting)
		}
		return p.container(m, depth+1)
	}
	return nil, p.errorf("unknown marker %q", m)
}

// container reads an array or object, with the optional $type and #count
// headers.
func (p *ubjParser) container(open byte, depth int) (any, error) {
	var elemType byte
	count := -1
	if p.pos < len(p.data) && p.data[p.pos] == '$' {
		p.pos++
		t, err := p.byte()
		if err != nil {
			return nil, err
		}
		elemType = t
		if p.pos >= len(p.data) || p.data[p.pos] != '#' {
			return nil, p.errorf("typed container without a count")
		}
	}
	if p.pos < len(p.data) && p.data[p.pos] == '#' {
		p.pos++
		n, err := p.length()
		if err != nil {
			return nil, err
		}
		count = n
	}
	if open == '[' && elemType != 0 {
		if arr, ok, err := p.numericArray(elemType, count); ok || err != nil {
			return arr, err
		}
	}
	// Every element takes at least one byte (the key length for objects),
	// so a count beyond the remaining input is a lie; refusing it bounds
	// allocation.
	// Typed null or boolean elements take no bytes at all; no model needs
	// many of them.
	limit := len(p.data) - p.pos
	if elemType == 'Z' || elemType == 'T' || elemType == 'F' {
		limit = 1 << 16
	}
	if count > limit {
		return nil, p.errorf("count %d exceeds the remaining input", count)
	}
	next := func() (any, bool, error) {
		if count >= 0 {
			if count == 0 {
				return nil, false, nil
			}
			count--
			if elemType != 0 {
				v, err := p.typed(elemType, depth)
				return v, true, err
			}
			v, err := p.value(depth)
			return v, true, err
		}
		m, err := p.marker()
		if err != nil {
			return nil, false, err
		}
		if (open == '[' && m == ']') || (open == '{' && m == '}') {
			return nil, false, nil
		}
		v, err := p.typed(m, depth)
		return v, true, err
	}
	if open == '[' {
		arr := []any{}
		for {
			v, ok, err := next()
			if err != nil {
				return nil, err
			}
			if !ok {
				return arr, nil
			}
			arr = append(arr, v)
		}
	}
	obj := map[string]any{}
	for {
		if count < 0 {
			// Unsized object: a '}' ends it, otherwise a key follows.
			if p.pos < len(p.data) && p.data[p.pos] == '}' {
				p.pos++
				return obj, nil
			}
		} else if count == 0 {
			return obj, nil
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		var v any
		if count >= 0 {
			count--
			if elemType != 0 {
				v, err = p.typed(elemType, depth)
			} else {
				v, err = p.value(depth)
			}
		} else {
			v, err = p.value(depth)
		}
		if err != nil {
			return nil, err
		}
		obj[key] = v
	}
}

// numericArray decodes a strongly typed numeric array in one pass. ok is
// false when t is not a fixed-size numeric type.
func (p *ubjParser) numericArray(t byte, count int) (arr any, ok bool, err error) {
	size := numSize(t)
	if size == 0 || t == 'C' {
		return nil, false, nil
	}
	b, err := p.take(count * size)
	if err != nil {
		return nil, true, err
	}
	switch t {
	case 'd':
		out := make([]float32, count)
		for i := range out {
			out[i] = math.Float32frombits(binary.BigEndian.Uint32(b[4*i:]))
		}
		return out, true, nil
	case 'D':
		out := make([]float64, count)
		for i := range out {
			out[i] = math.Float64frombits(binary.BigEndian.Uint64(b[8*i:]))
		}
		return out, true, nil
	}
	out := make([]int64, count)
	for i := range out {
		switch t {
		case 'i':
			out[i] = int64(int8(b[i]))
		case 'U':
			out[i] = int64(b[i])
		case 'I':
			out[i] = int64(int16(binary.BigEndian.Uint16(b[2*i:])))
		case 'l':
			out[i] = int64(int32(binary.BigEndian.Uint32(b[4*i:])))
		case 'L':
			out[i] = int64(binary.BigEndian.Uint64(b[8*i:]))
		}
	}
	return out, true, nil
}
