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
	depth, keys, inString, escaped := 0, 0, false, false
	for _, c := range raw {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
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
