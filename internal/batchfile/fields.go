package batchfile

import (
	"errors"
	"strings"
)

// Errors of SplitCSV, worded for a row error.
var (
	ErrBareQuote = errors.New(`a quote appears inside an unquoted field; quote the whole field and double the quote`)
	ErrQuote     = errors.New(`a quoted field is not closed, or text follows its closing quote`)
)

// SplitCSV splits one record, as Reader returns it, into its fields by the
// rules of encoding/csv: fields are separated by commas; a field starting
// with a quote runs to the next lone quote, and "" inside it is one quote.
// Unquoted fields are substrings of rec, so a row costs one allocation
// unless it has escaped quotes. It appends to dst[:0].
func SplitCSV(rec string, dst []string) ([]string, error) {
	dst = dst[:0]
	for {
		if rec == "" || rec[0] != '"' {
			field, rest, more := strings.Cut(rec, ",")
			if strings.IndexByte(field, '"') >= 0 {
				return dst, ErrBareQuote
			}
			dst = append(dst, field)
			if !more {
				return dst, nil
			}
			rec = rest
			continue
		}
		field, rest, err := quoted(rec[1:])
		if err != nil {
			return dst, err
		}
		dst = append(dst, field)
		if rest == "" {
			return dst, nil
		}
		rec = rest[1:] // past the comma
	}
}

// quoted reads a quoted field whose opening quote is already consumed and
// returns it unescaped with what follows its closing quote (empty, or a
// comma and the rest).
func quoted(s string) (field, rest string, err error) {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			return "", "", ErrQuote
		}
		if i+1 < len(s) && s[i+1] == '"' { // escaped quote
			b.WriteString(s[:i+1])
			s = s[i+2:]
			continue
		}
		if i+1 < len(s) && s[i+1] != ',' {
			return "", "", ErrQuote
		}
		if b.Len() == 0 {
			return s[:i], s[i+1:], nil
		}
		b.WriteString(s[:i])
		return b.String(), s[i+1:], nil
	}
}
