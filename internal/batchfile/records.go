package batchfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrRecordTooLong is returned by Reader.Next for a record over the limit,
// most often an unterminated quote swallowing the rest of a CSV file.
var ErrRecordTooLong = errors.New("record is over the size limit")

// Reader splits a stream into records: CSV records (which may span lines
// inside quotes) or JSONL lines. Line endings are "\n" or "\r\n"; blank
// records are skipped, as encoding/csv does.
type Reader struct {
	br    *bufio.Reader
	csv   bool
	max   int
	rec   []byte
	lines int
}

// NewCSVReader reads CSV records from r, each at most max bytes.
func NewCSVReader(r io.Reader, max int) *Reader { return newReader(r, true, max) }

// NewJSONLReader reads JSON lines from r, each at most max bytes.
func NewJSONLReader(r io.Reader, max int) *Reader { return newReader(r, false, max) }

func newReader(r io.Reader, csv bool, max int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 256<<10), csv: csv, max: max}
}

// Line is the number of input lines consumed so far, for error messages.
func (r *Reader) Line() int { return r.lines }

// Next returns the next record without its final line ending, "\r\n"
// inside a CSV record turned into "\n". The slice is valid until the next
// call. At the end of the input it returns io.EOF.
func (r *Reader) Next() ([]byte, error) {
	for {
		rec, err := r.record()
		if err != nil && (err != io.EOF || len(rec) == 0) {
			return nil, err
		}
		if r.csv && len(rec) == 0 || !r.csv && len(bytes.TrimSpace(rec)) == 0 {
			continue // blank line
		}
		return rec, nil
	}
}

// record reads lines until the quotes of a CSV record balance (JSON strings
// never hold a raw newline, so a JSONL record is one line).
func (r *Reader) record() ([]byte, error) {
	r.rec = r.rec[:0]
	open := false
	for {
		start := len(r.rec)
		err := r.appendLine()
		if err != nil && err != io.EOF {
			return nil, err
		}
		if len(r.rec) > r.max {
			return nil, fmt.Errorf("line %d: %w (%d bytes)", r.lines, ErrRecordTooLong, r.max)
		}
		if r.csv && bytes.Count(r.rec[start:], []byte{'"'})%2 == 1 {
			open = !open
		}
		if err != nil || !open {
			return bytes.TrimSuffix(r.rec, []byte{'\n'}), err
		}
	}
}

// appendLine appends one line to r.rec with "\r\n" normalised to "\n"; a
// "\r" right before the end of the input is dropped too. It stops early
// once r.rec is over the limit.
func (r *Reader) appendLine() error {
	start := len(r.rec)
	for {
		piece, err := r.br.ReadSlice('\n')
		r.rec = append(r.rec, piece...)
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(r.rec) > r.max {
				return nil
			}
			continue
		}
		if err != nil && err != io.EOF {
			return err
		}
		n := len(r.rec) - start
		if n > 0 {
			r.lines++
		}
		switch end := len(r.rec); {
		case n >= 2 && r.rec[end-2] == '\r' && r.rec[end-1] == '\n':
			r.rec[end-2] = '\n'
			r.rec = r.rec[:end-1]
		case err == io.EOF && n >= 1 && r.rec[end-1] == '\r':
			r.rec = r.rec[:end-1]
		}
		return err
	}
}

// NextRecord splits the first record off a chunk as the API stores it (the
// records Reader returned, each followed by "\n"), without copying: a CSV
// record runs to the first newline outside quotes. It returns the record
// and the rest; both are empty at the end.
func NextRecord(chunk string, csv bool) (rec, rest string) {
	quotes := 0
	for i := 0; ; {
		j := strings.IndexByte(chunk[i:], '\n')
		if j < 0 {
			return chunk, ""
		}
		if csv {
			quotes += strings.Count(chunk[i:i+j], `"`)
		}
		i += j
		if quotes%2 == 0 {
			return chunk[:i], chunk[i+1:]
		}
		i++
	}
}
