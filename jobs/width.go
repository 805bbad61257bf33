package jobs

import "fmt"

// CheckWidth refuses JSON inputs (one object, or a list of objects) in
// which some row has more than MaxRowFields fields, before they are
// decoded: decoding a 1 MiB object of short keys builds a map of a hundred
// thousand entries, some tens of megabytes, only for the row to be refused.
// It counts the keys of each row in one pass over the bytes, allocating
// nothing; what is not valid JSON is left for the decoder to refuse. Keys
// count as written: a row repeating a key 2,000 times is refused too.
func CheckWidth(raw []byte) *FieldError { return checkWidth(raw, MaxRowFields) }

func checkWidth(raw []byte, most int) *FieldError {
	rowDepth := 1
	for _, c := range raw {
		if c == '[' {
			rowDepth = 2
		}
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			break
		}
	}
	depth, keys, str := 0, 0, jsonStrings{}
	for _, c := range raw {
		if str.inside(c) {
			continue
		}
		switch c {
		case '{', '[':
			depth++
			if depth == rowDepth && c == '{' {
				keys = 0
			}
		case '}', ']':
			depth--
		case ':':
			if depth == rowDepth {
				if keys++; keys > most {
					return &FieldError{Code: CodeTooManyFields, Detail: fmt.Sprintf("a row has more than %d fields, the most a row may have", most)}
				}
			}
		}
	}
	return nil
}

// CheckBodyWidth refuses a JSON request body in which any object, at any
// depth, has more than MaxRowFields members: the API runs it before it
// decodes a body at all, since even validating a megabyte of short keys
// costs milliseconds of the CPU that every tenant's requests share, and a
// body's envelope and options are far narrower than a row. It stops at the
// first object over the bound; what is not valid JSON is left for the
// decoder to refuse. A BodyWidth does the same as the body is read.
func CheckBodyWidth(raw []byte) *Error {
	var w BodyWidth
	_, _ = w.Write(raw)
	return w.err
}

// BodyWidth is CheckBodyWidth as an io.Writer, fed a body as it is read
// (io.TeeReader), so a body that is too wide is refused when its first
// object passes the bound, without reading the rest. Write returns the
// 422's *Error once it has seen too many members, and on every Write
// after. The zero value is ready to use.
type BodyWidth struct {
	most  int // 0: MaxRowFields
	keys  []int
	stack [16]int
	str   jsonStrings
	err   *Error
}

func (w *BodyWidth) Write(p []byte) (int, error) {
	if w.err == nil {
		if w.keys == nil {
			w.keys = w.stack[:0]
		}
		if fe := w.scan(p); fe != nil {
			w.err = widthError(fe)
		}
	}
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// widthError is the 422 of inputs too wide to decode.
func widthError(fe *FieldError) *Error {
	return &Error{Code: CodeInvalidInput, Detail: "Some inputs do not match the model's schema.", Fields: []FieldError{*fe}}
}

func checkBodyWidth(raw []byte, most int) *FieldError {
	w := BodyWidth{most: most}
	w.keys = w.stack[:0]
	return w.scan(raw)
}

// scan follows p, the body's next bytes, keeping per open object or list
// its members so far (-1: a list).
func (w *BodyWidth) scan(p []byte) *FieldError {
	most := w.most
	if most == 0 {
		most = MaxRowFields
	}
	for _, c := range p {
		if w.str.inside(c) {
			continue
		}
		switch c {
		case '{':
			w.keys = append(w.keys, 0)
		case '[':
			w.keys = append(w.keys, -1)
		case '}', ']':
			if len(w.keys) > 0 {
				w.keys = w.keys[:len(w.keys)-1]
			}
		case ':':
			if n := len(w.keys) - 1; n >= 0 && w.keys[n] >= 0 {
				if w.keys[n]++; w.keys[n] > most {
					return &FieldError{Code: CodeTooManyFields, Detail: fmt.Sprintf("an object in the body has more than %d members, the most a row may have", most)}
				}
			}
		}
	}
	return nil
}

// jsonStrings follows JSON text byte by byte to tell which bytes belong to
// strings, so that scanners can count structure without decoding.
type jsonStrings struct{ in, escaped bool }

// inside reports whether c, the text's next byte, is part of a string,
// its quotes included.
func (s *jsonStrings) inside(c byte) bool {
	switch {
	case !s.in:
		s.in = c == '"'
	case s.escaped:
		s.escaped = false
	case c == '\\':
		s.escaped = true
	case c == '"':
		s.in = false
		return true
	}
	return s.in
}
