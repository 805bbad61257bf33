package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// download is a results file written whole.
type download struct {
	rows  int
	bytes int64
}

// downloadResults streams a batch's results (with wait, while it runs)
// into OUT.part, checks they are whole against the API's count and want,
// the batch's rows_total, and only then renames the file to out. A
// download cut short, or a batch canceled midway, fails and leaves no file
// that looks complete.
func downloadResults(ctx context.Context, c *apiClient, id, out, format string, wait bool, want int) (download, error) {
	if format == "" {
		format = "csv"
		if ext := strings.ToLower(filepath.Ext(out)); ext == ".jsonl" || ext == ".ndjson" {
			format = "jsonl"
		}
	}
	resp, err := c.do(ctx, "GET", "/api/v1/batches/"+url.PathEscape(id)+"/results?format="+url.QueryEscape(format)+"&wait="+strconv.FormatBool(wait), nil, nil, http.StatusOK)
	if err != nil {
		return download{}, err
	}
	defer resp.Body.Close()
	part := out + ".part"
	f, err := os.Create(part)
	if err != nil {
		return download{}, err
	}
	rows := &rowCounter{csv: format == "csv"}
	n, err := io.Copy(io.MultiWriter(f, rows), resp.Body)
	if err != nil {
		err = fmt.Errorf("cut short after %d rows (%w)", rows.rows(), err)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = rows.check(resp.Trailer, want)
	}
	if err == nil {
		err = os.Rename(part, out)
	}
	if err != nil {
		_ = os.Remove(part)
		return download{}, fmt.Errorf("results of batch %s: %w; %s not written", id, err, out)
	}
	return download{rows.rows(), n}, nil
}

// rowCounter counts the rows of a results file as it is written: CSV
// records (newlines outside quoted cells) after the header, or JSONL lines
// before the end marker, which it keeps the end of the file for.
type rowCounter struct {
	csv    bool
	quoted bool
	lines  int
	tail   []byte
}

// tailMax is how much of the file's end rowCounter keeps: more than the
// JSONL end marker's length.
const tailMax = 256

// Write counts p's newlines outside quoted cells: from quote to quote,
// each quote flipping in or out of a cell (a doubled quote inside one flips
// twice). bytes.IndexByte and bytes.Count keep it to a few milliseconds a
// million rows.
func (r *rowCounter) Write(p []byte) (int, error) {
	for rest := p; len(rest) > 0; {
		q := len(rest)
		if r.csv {
			if i := bytes.IndexByte(rest, '"'); i >= 0 {
				q = i
			}
		}
		if !r.quoted {
			r.lines += bytes.Count(rest[:q], []byte{'\n'})
		}
		if q < len(rest) {
			r.quoted = !r.quoted
			q++
		}
		rest = rest[q:]
	}
	r.tail = append(r.tail, p[max(0, len(p)-tailMax):]...)
	if len(r.tail) > tailMax {
		r.tail = append(r.tail[:0], r.tail[len(r.tail)-tailMax:]...)
	}
	return len(p), nil
}

// resultsEnd is the JSONL end marker.
type resultsEnd struct {
	End    bool   `json:"end"`
	Rows   int    `json:"rows"`
	Status string `json:"status"`
}

// end is the JSONL end marker, if the file's last line is one.
func (r *rowCounter) end() (resultsEnd, bool) {
	last := bytes.TrimSuffix(r.tail, []byte("\n"))
	last = last[bytes.LastIndexByte(last, '\n')+1:]
	var e resultsEnd
	return e, !r.csv && json.Unmarshal(last, &e) == nil && e.End
}

// rows is how many result rows were written.
func (r *rowCounter) rows() int {
	if _, ok := r.end(); ok || r.csv && r.lines > 0 {
		return r.lines - 1
	}
	return r.lines
}

// check compares the rows written with what the API said at the stream's
// end, in its trailers (which only a whole stream has) and, in JSONL, in
// its end marker, and with want, the batch's rows_total.
func (r *rowCounter) check(trailer http.Header, want int) error {
	rows, sent, status := r.rows(), trailer.Get("X-Hokusai-Rows"), trailer.Get("X-Hokusai-Status")
	if sent == "" {
		return fmt.Errorf("cut short after %d rows: the API did not confirm the end (no X-Hokusai-Rows trailer)", rows)
	}
	if sent != strconv.Itoa(rows) {
		return fmt.Errorf("the API sent %s rows, the file holds %d", sent, rows)
	}
	if e, ok := r.end(); !r.csv && (!ok || e.Rows != rows || e.Status != status) {
		return fmt.Errorf("the file does not end with the end marker of its %d rows", rows)
	}
	if status == "canceled" {
		return fmt.Errorf("the batch was canceled after %d of its %d rows", rows, want)
	}
	if rows != want {
		return fmt.Errorf("the file holds %d of the batch's %d rows", rows, want)
	}
	return nil
}
