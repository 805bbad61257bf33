package batchfile

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strconv"
)

// ColType says how a result column renders.
type ColType byte

// Result column types. A List renders as a JSON array in JSONL and as its
// items joined by "; " in CSV; JSON is a JSON text kept as is; Warnings is a
// row's input warnings, a JSON list (empty text when there are none, which
// JSONL leaves out).
const (
	ColInt ColType = iota + 1
	ColFloat
	ColString
	ColList
	ColJSON
	ColWarnings
)

// Column is one output column of a model's batch results.
type Column struct {
	Name string
	Type ColType
}

// A chunk's results are one string:
//
//	uvarint ncols, then per column: uvarint len, name, type byte
//	per row: uvarint row number, status byte, uvarint len, id,
//	  status ok:    per column: uvarint len, text (List: uvarint n, then n texts)
//	  status error: code, detail, field errors as a JSON list (each uvarint len, text)
//
// Numbers are kept as the text they render as, so rendering copies bytes.
const (
	statusOK  = 0
	statusErr = 1
)

// ResultWriter builds a chunk's results.
type ResultWriter struct {
	buf  []byte
	cols []Column
	col  int
}

// NewResultWriter starts a chunk's results with the given columns.
func NewResultWriter(cols []Column, sizeHint int) *ResultWriter {
	w := &ResultWriter{buf: make([]byte, 0, sizeHint), cols: cols}
	w.buf = binary.AppendUvarint(w.buf, uint64(len(cols)))
	for _, c := range cols {
		w.str(c.Name)
		w.buf = append(w.buf, byte(c.Type))
	}
	return w
}

func (w *ResultWriter) str(s string) {
	w.buf = binary.AppendUvarint(w.buf, uint64(len(s)))
	w.buf = append(w.buf, s...)
}

// OK starts a scored row; follow it with one value per column, in order.
func (w *ResultWriter) OK(row int, id string) {
	w.buf = binary.AppendUvarint(w.buf, uint64(row))
	w.buf = append(w.buf, statusOK)
	w.str(id)
	w.col = 0
}

// Int appends an integer value.
func (w *ResultWriter) Int(v int64) {
	var a [24]byte
	w.text(strconv.AppendInt(a[:0], v, 10))
}

// Float appends a float value, kept to float32 precision (about seven
// significant digits), which is all a probability needs. NaN and the
// infinities have no JSON form: they are stored empty and render as null.
func (w *ResultWriter) Float(v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		w.text(nil)
		return
	}
	var a [32]byte
	w.text(strconv.AppendFloat(a[:0], v, 'g', -1, 32))
}

// String appends a string value.
func (w *ResultWriter) String(s string) {
	w.buf = binary.AppendUvarint(w.buf, uint64(len(s)))
	w.buf = append(w.buf, s...)
	w.col++
}

// List appends a list of strings.
func (w *ResultWriter) List(items []string) {
	w.buf = binary.AppendUvarint(w.buf, uint64(len(items)))
	for _, s := range items {
		w.str(s)
	}
	w.col++
}

// JSON appends a JSON text; Warnings (a JSON list, or nothing) too.
func (w *ResultWriter) JSON(b []byte) { w.text(b) }

func (w *ResultWriter) text(b []byte) {
	w.buf = binary.AppendUvarint(w.buf, uint64(len(b)))
	w.buf = append(w.buf, b...)
	w.col++
}

// Fail records a row that was not scored.
func (w *ResultWriter) Fail(row int, id string, e *RowError) {
	w.buf = binary.AppendUvarint(w.buf, uint64(row))
	w.buf = append(w.buf, statusErr)
	w.str(id)
	w.str(e.Code)
	w.str(e.Detail)
	var fields []byte
	if len(e.Fields) > 0 {
		fields, _ = json.Marshal(e.Fields)
	}
	w.str(string(fields))
}

// Bytes returns the encoded results.
func (w *ResultWriter) Bytes() []byte { return w.buf }

// ErrCorrupt is returned for results that do not decode.
var ErrCorrupt = errors.New("batch results are corrupt")

// Result is one decoded row. Its slices point into the decoded buffer.
type Result struct {
	Row    int
	ID     []byte
	Failed bool
	// Values holds one text per column when scored; a List column's items
	// are in Items[Values[i] item range], see ListItems.
	Values [][]byte
	Lists  [][][]byte
	// Code, Detail and Fields (a JSON list, possibly empty) when failed.
	Code, Detail, Fields []byte
}

// ResultReader decodes a chunk's results row by row.
type ResultReader struct {
	b    []byte
	Cols []Column
	res  Result
}

// NewResultReader reads the column header of a chunk's results.
func NewResultReader(b []byte) (*ResultReader, error) {
	r := &ResultReader{b: b}
	n, ok := r.uvarint()
	if !ok || n > 1024 {
		return nil, ErrCorrupt
	}
	for range n {
		name, ok := r.bytes()
		if !ok || len(r.b) == 0 {
			return nil, ErrCorrupt
		}
		r.Cols = append(r.Cols, Column{Name: string(name), Type: ColType(r.b[0])})
		r.b = r.b[1:]
	}
	r.res.Values = make([][]byte, n)
	r.res.Lists = make([][][]byte, n)
	return r, nil
}

// Next decodes the next row; the Result is reused by the next call. It
// returns nil, nil after the last row.
func (r *ResultReader) Next() (*Result, error) {
	if len(r.b) == 0 {
		return nil, nil
	}
	res := &r.res
	row, ok := r.uvarint()
	if !ok || len(r.b) == 0 {
		return nil, ErrCorrupt
	}
	res.Row, res.Failed = int(row), r.b[0] == statusErr
	r.b = r.b[1:]
	if res.ID, ok = r.bytes(); !ok {
		return nil, ErrCorrupt
	}
	if res.Failed {
		var ok1, ok2, ok3 bool
		res.Code, ok1 = r.bytes()
		res.Detail, ok2 = r.bytes()
		res.Fields, ok3 = r.bytes()
		if !ok1 || !ok2 || !ok3 {
			return nil, ErrCorrupt
		}
		return res, nil
	}
	for i, c := range r.Cols {
		if c.Type != ColList {
			if res.Values[i], ok = r.bytes(); !ok {
				return nil, ErrCorrupt
			}
			continue
		}
		n, ok := r.uvarint()
		if !ok || n > uint64(len(r.b)) {
			return nil, ErrCorrupt
		}
		res.Lists[i] = res.Lists[i][:0]
		for range n {
			item, ok := r.bytes()
			if !ok {
				return nil, ErrCorrupt
			}
			res.Lists[i] = append(res.Lists[i], item)
		}
	}
	return res, nil
}

func (r *ResultReader) uvarint() (uint64, bool) {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		return 0, false
	}
	r.b = r.b[n:]
	return v, true
}

func (r *ResultReader) bytes() ([]byte, bool) {
	n, ok := r.uvarint()
	if !ok || n > uint64(len(r.b)) {
		return nil, false
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b, true
}
