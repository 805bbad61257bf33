package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hokusai-ai/inference-queue/internal/leadgen"
)

const batchUsage = `usage: hokusai batch COMMAND (talks to HOKUSAI_API_URL with HOKUSAI_API_KEY)
  submit FILE --model ID [--wait] [-o OUT] [--format csv|jsonl] [--callback URL] [--idempotency-key K] [--explain]
  submit s3://BUCKET/KEY --model ID --output s3://BUCKET/PREFIX/ [--wait] [--format csv|jsonl] [--callback URL] [--idempotency-key K]
  status ID
  results ID -o OUT [--format csv|jsonl]
  cancel ID
  gen-leads N [-o OUT] [--seed S]   write N synthetic leads for model 21 as CSV`

// apiClient calls the Hokusai API over HTTP.
type apiClient struct {
	base string
	key  string
	http *http.Client
}

// apiFlags adds --api-url and --api-key, defaulting to the environment.
func apiFlags(fs *flag.FlagSet, getenv func(string) string) *apiClient {
	c := &apiClient{http: &http.Client{}}
	base := getenv("HOKUSAI_API_URL")
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	fs.StringVar(&c.base, "api-url", base, "API base URL (HOKUSAI_API_URL)")
	fs.StringVar(&c.key, "api-key", getenv("HOKUSAI_API_KEY"), "API key (HOKUSAI_API_KEY)")
	return c
}

// do sends a request and returns the response when its status is want;
// otherwise it turns the API's JSON error into a Go error.
func (c *apiClient) do(ctx context.Context, method, path string, body io.Reader, header http.Header, want int) (*http.Response, error) {
	if c.key == "" {
		return nil, errors.New("no API key: set HOKUSAI_API_KEY or pass --api-key")
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.base, "/")+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("X-API-Key", c.key)
	if f, ok := body.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			req.ContentLength = st.Size()
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == want {
		return resp, nil
	}
	defer resp.Body.Close()
	var e struct {
		Code, Detail string
		Errors       []struct{ Field, Detail string }
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) != nil || e.Detail == "" {
		return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	for _, f := range e.Errors {
		e.Detail += " " + f.Field + ": " + f.Detail + "."
	}
	return nil, fmt.Errorf("%s (%s, %s)", e.Detail, resp.Status, e.Code)
}

func (c *apiClient) getJSON(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, "GET", path, nil, nil, http.StatusOK)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// parseMixed parses flags that may come before or after positional
// arguments, and returns the positionals.
func parseMixed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// apiCommand starts command group's subcommand args[0], which talks to
// the API: its flag set, with --api-url and --api-key added.
func apiCommand(group, usage string, args []string, getenv func(string) string, stderr io.Writer) (*flag.FlagSet, *apiClient, error) {
	if len(args) == 0 {
		return nil, nil, errors.New(usage)
	}
	fs := flag.NewFlagSet(group+" "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs, apiFlags(fs, getenv), nil
}

func runBatch(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, c, err := apiCommand("batch", batchUsage, args, getenv, stderr)
	if err != nil {
		return err
	}
	switch args[0] {
	case "submit":
		return batchSubmit(ctx, c, fs, args[1:], stdout, stderr)
	case "status":
		pos, err := parseMixed(fs, args[1:])
		if err != nil || len(pos) != 1 {
			return errors.New("batch status needs one batch id")
		}
		var st batchState
		if err := c.getJSON(ctx, "/api/v1/batches/"+url.PathEscape(pos[0]), &st); err != nil {
			return err
		}
		return printJSON(stdout, st.raw)
	case "results":
		out := fs.String("o", "", "file to write the results to")
		format := fs.String("format", "", "csv or jsonl (default: from -o's extension)")
		pos, err := parseMixed(fs, args[1:])
		if err != nil || len(pos) != 1 || *out == "" {
			return errors.New("batch results needs one batch id and -o OUT")
		}
		var st batchState
		if err := c.getJSON(ctx, "/api/v1/batches/"+url.PathEscape(pos[0]), &st); err != nil {
			return err
		}
		d, err := downloadResults(ctx, c, pos[0], *out, *format, false, st.RowsTotal)
		if err == nil {
			fmt.Fprintf(stderr, "wrote %s (%d rows, %d bytes)\n", *out, d.rows, d.bytes)
		}
		return err
	case "cancel":
		pos, err := parseMixed(fs, args[1:])
		if err != nil || len(pos) != 1 {
			return errors.New("batch cancel needs one batch id")
		}
		resp, err := c.do(ctx, "DELETE", "/api/v1/batches/"+url.PathEscape(pos[0]), nil, nil, http.StatusOK)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return printJSON(stdout, b)
	case "gen-leads":
		out := fs.String("o", "", "file to write (default stdout)")
		seed := fs.Uint64("seed", 1, "random seed; the same seed writes the same file")
		pos, err := parseMixed(fs, args[1:])
		if err != nil || len(pos) != 1 {
			return errors.New("batch gen-leads needs a number of rows")
		}
		n, err := strconv.Atoi(strings.ReplaceAll(pos[0], "_", ""))
		if err != nil || n < 0 {
			return fmt.Errorf("batch gen-leads: %q is not a number of rows", pos[0])
		}
		if *out == "" {
			return leadgen.WriteCSV(stdout, n, *seed, nil)
		}
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		if err := leadgen.WriteCSV(f, n, *seed, nil); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	return fmt.Errorf("unknown batch command %q\n%s", args[0], batchUsage)
}

// mediaTypes maps a file extension to the Content-Type the API reads.
var mediaTypes = map[string]string{".csv": "text/csv", ".jsonl": "application/x-ndjson",
	".ndjson": "application/x-ndjson", ".json": "application/json"}

func batchSubmit(ctx context.Context, c *apiClient, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	modelID := fs.String("model", "", "model id to score with")
	wait := fs.Bool("wait", false, "wait for the batch to finish, showing progress")
	out := fs.String("o", "", "with --wait: file to write the results to")
	output := fs.String("output", "", "an S3 input's output prefix, s3://bucket/prefix/")
	format := fs.String("format", "", "results format, csv or jsonl (default: from -o's extension); an S3 input's format (default: from its name)")
	callback := fs.String("callback", "", "URL to POST the signed completion summary to")
	idem := fs.String("idempotency-key", "", "resubmitting with the same key and file returns the same batch")
	explain := fs.Bool("explain", false, "compute each row's factors (slow: about 1 ms a row)")
	pos, err := parseMixed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *modelID == "" {
		return errors.New("batch submit needs one FILE and --model ID")
	}
	var body io.Reader
	var ctype string
	if strings.HasPrefix(pos[0], "s3://") {
		if *output == "" || *out != "" {
			return errors.New("batch submit of an s3:// input needs --output s3://bucket/prefix/ (the worker writes the results there; -o does not apply)")
		}
		b, _ := json.Marshal(map[string]string{"input_url": pos[0], "output_url": *output, "format": *format})
		body, ctype = bytes.NewReader(b), "application/json"
	} else {
		var ok bool
		if ctype, ok = mediaTypes[strings.ToLower(filepath.Ext(pos[0]))]; !ok {
			return fmt.Errorf("batch submit: name the file .csv, .jsonl, .ndjson or .json so its format is known, not %q", pos[0])
		}
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		body = f
	}
	q := url.Values{}
	if *callback != "" {
		q.Set("callback_url", *callback)
	}
	if *explain {
		q.Set("explain", "true")
	}
	path := "/api/v1/models/" + url.PathEscape(*modelID) + "/batches"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	h := http.Header{"Content-Type": {ctype}}
	if *idem != "" {
		h.Set("Idempotency-Key", *idem)
	}
	start := time.Now()
	resp, err := c.do(ctx, "POST", path, body, h, http.StatusAccepted)
	if err != nil {
		return err
	}
	var acc struct {
		BatchID string `json:"batch_id"`
		Rows    int    `json:"rows"`
	}
	err = json.NewDecoder(resp.Body).Decode(&acc)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read the API's answer: %w", err)
	}
	fmt.Fprintln(stdout, acc.BatchID)
	if ctype == "application/json" && acc.Rows == 0 {
		fmt.Fprintf(stderr, "submitted %s as batch %s; a worker reads it\n", pos[0], acc.BatchID)
	} else {
		fmt.Fprintf(stderr, "submitted %d rows as batch %s in %.1fs\n", acc.Rows, acc.BatchID, time.Since(start).Seconds())
	}
	if !*wait {
		return nil
	}
	// The results stream while the batch runs (wait=true), so the file is
	// complete moments after the last chunk is scored.
	type result struct {
		d   download
		err error
	}
	got := make(chan result, 1)
	dctx, stopDownload := context.WithCancel(ctx)
	defer stopDownload()
	if *out != "" {
		go func() {
			d, err := downloadResults(dctx, c, acc.BatchID, *out, *format, true, acc.Rows)
			got <- result{d, err}
		}()
	}
	st, err := waitBatch(ctx, c, acc.BatchID, stderr)
	if err != nil {
		if *out != "" {
			stopDownload()
			if r := <-got; r.err != nil { // it removed its partial file
				err = fmt.Errorf("%w; %s not written", err, *out)
			}
		}
		return err
	}
	if *out != "" {
		r := <-got
		if r.err != nil {
			return r.err
		}
		fmt.Fprintf(stderr, "wrote %s (%d rows, %d bytes); %.1fs from submit\n", *out, r.d.rows, r.d.bytes, time.Since(start).Seconds())
	}
	if st.Error != nil {
		return fmt.Errorf("batch %s failed: %s (%s)", acc.BatchID, st.Error.Detail, st.Error.Code)
	}
	if st.Status == "failed" || st.Status == "canceled" {
		return fmt.Errorf("batch %s %s", acc.BatchID, st.Status)
	}
	if st.OutputURL != "" {
		fmt.Fprintf(stderr, "wrote results, errors and _SUCCESS under %s; %.1fs from submit\n", st.OutputURL, time.Since(start).Seconds())
	}
	return nil
}

// batchState is the part of a batch's status the CLI reads; raw is all of it.
type batchState struct {
	Status     string   `json:"status"`
	RowsTotal  int      `json:"rows_total"`
	RowsDone   int      `json:"rows_done"`
	RowsFailed int      `json:"rows_failed"`
	ETA        *float64 `json:"eta_seconds"`
	FinishedAt *string  `json:"finished_at"`
	CanceledAt *string  `json:"canceled_at"`
	// An S3 batch is done once its output is written, or it failed.
	OutputURL  string  `json:"output_url"`
	ExportedAt *string `json:"exported_at"`
	Error      *struct {
		Code, Detail string
	} `json:"error"`
	raw json.RawMessage
}

func (b *batchState) UnmarshalJSON(data []byte) error {
	type plain batchState
	if err := json.Unmarshal(data, (*plain)(b)); err != nil {
		return err
	}
	b.raw = append(b.raw[:0], data...)
	return nil
}

func printJSON(w io.Writer, raw []byte) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	_, err := fmt.Fprintf(w, "%s\n", b)
	return err
}

// waitBatch polls until the batch finishes or is canceled, drawing a live
// bar on a terminal and writing a plain line every few seconds otherwise.
func waitBatch(ctx context.Context, c *apiClient, id string, stderr io.Writer) (batchState, error) {
	tty := isTerminal(stderr)
	start := time.Now()
	var lastLine time.Time
	for {
		var st batchState
		if err := c.getJSON(ctx, "/api/v1/batches/"+url.PathEscape(id), &st); err != nil {
			return st, err
		}
		done := st.done()
		rate := float64(st.RowsDone) / max(time.Since(start).Seconds(), 1e-3)
		switch {
		case tty:
			fmt.Fprintf(stderr, "\r%s", progressBar(st, rate))
			if done {
				fmt.Fprintln(stderr)
			}
		case done || time.Since(lastLine) >= 2*time.Second:
			fmt.Fprintf(stderr, "batch %s: %s, %d/%s rows, %d failed, %.0f rows/s\n", id, st.Status, st.RowsDone, st.total(), st.RowsFailed, rate)
			lastLine = time.Now()
		}
		if done {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// done says whether the batch will change no more: an S3 batch, once its
// output is written (after its last chunk is scored).
func (b batchState) done() bool {
	if b.CanceledAt != nil || b.Error != nil {
		return true
	}
	if b.OutputURL != "" {
		return b.ExportedAt != nil
	}
	return b.FinishedAt != nil
}

// total is the batch's row count, "?" while an S3 batch's input is still
// being read (its rows are counted as they are).
func (b batchState) total() string {
	if b.RowsTotal == 0 && b.OutputURL != "" && !b.done() {
		return "?"
	}
	return strconv.Itoa(b.RowsTotal)
}

func progressBar(st batchState, rate float64) string {
	const width = 30
	frac := 0.0
	if st.RowsTotal > 0 {
		frac = float64(st.RowsDone) / float64(st.RowsTotal)
	}
	filled := int(frac * width)
	eta := "ETA --"
	if st.ETA != nil {
		eta = fmt.Sprintf("ETA %.0fs", *st.ETA)
	}
	return fmt.Sprintf("[%s%s] %3.0f%% %d/%s rows, %d failed, %.0f rows/s, %s   ", strings.Repeat("#", filled),
		strings.Repeat("-", width-filled), 100*frac, st.RowsDone, st.total(), st.RowsFailed, rate, eta)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
