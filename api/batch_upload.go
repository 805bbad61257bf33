// Reading a batch body (CSV, JSONL or a JSON inputs list) into the batch's
// record and rows.

package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/apikey"
	"github.com/hokusai-ai/inference-queue/internal/batchchunk"
	"github.com/hokusai-ai/inference-queue/internal/batchfile"
	"github.com/hokusai-ai/inference-queue/internal/pace"
	"github.com/hokusai-ai/inference-queue/internal/registry"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// batchUpload is one submission being stored: records are gathered into
// chunks, each chunk stored and its task queued as soon as it is full.
type batchUpload struct {
	s      *Server
	ctx    context.Context
	key    apikey.Record // the uploader's, charged for the rows
	id     string
	spec   registry.Spec
	ttl    time.Duration
	cw     *batchchunk.Writer
	window int // chunks of this batch queued at once
	pace   *pace.Pacer
	mode   jobs.Mode
	// warnings are the file's own (see batchAccepted).
	warnings []jobs.Warning
	s3       *s3Source // an S3 batch's locations; nil for rows in the body
}

// setMode records how the batch's rows are to be read: strictly or not,
// and as of when (by default, its submission).
func (u *batchUpload) setMode(rec map[string]any, strict bool, asOf time.Time) {
	if strict {
		rec[jobs.BatchFieldStrict] = "1"
		u.mode.Strict = true
	}
	if !asOf.IsZero() {
		rec[jobs.BatchFieldAsOf] = asOf.UnixMilli()
		u.mode.AsOf = asOf
	}
}

// limitedBody reads at most left bytes and remembers whether the body had more.
type limitedBody struct {
	r    io.Reader
	left int64
	over bool
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		n, err := l.r.Read(one[:])
		switch {
		case n > 0:
			l.over = true
			return 0, errors.New("body over the limit")
		case err != nil && err != io.EOF:
			return 0, err // a stall or a client gone is not the end of the body
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

func checkCallback(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errorf(CodeInvalidInput, "callback_url %q must be an absolute http or https URL.", raw)
	}
	return nil
}

// start writes the batch record; chunks follow.
func (u *batchUpload) start(rec map[string]any, callback string) error {
	if err := checkCallback(callback); err != nil {
		return err
	}
	if callback != "" {
		rec[jobs.BatchFieldCallback] = callback
	}
	_, err := u.s.rdb.TxPipelined(u.ctx, func(p redis.Pipeliner) error {
		p.HSet(u.ctx, jobs.BatchKey(u.id), rec)
		p.PExpire(u.ctx, jobs.BatchKey(u.id), u.ttl)
		return nil
	})
	return u.redisErr(err)
}

func (u *batchUpload) redisErr(err error) error {
	if err == nil {
		return nil
	}
	if u.ctx.Err() != nil {
		return errorf(CodeBadRequest, "The upload was interrupted.")
	}
	u.s.log.Warn("redis unavailable", "batch_id", u.id, "err", err.Error())
	return queueUnavailable()
}

func (u *batchUpload) readErr(err error, r *batchfile.Reader) error {
	if errors.Is(err, batchfile.ErrRecordTooLong) {
		return errorf(CodeTooLarge, "Line %d: a row is over the %d-byte limit (an unclosed quote, perhaps).", r.Line(), u.s.cfg.Batch.MaxRecordBytes)
	}
	return errorf(CodeBadRequest, "The body could not be read.")
}

// csv stores a CSV body: a header naming the model's inputs (and an
// optional id column), then one row a record.
func (u *batchUpload) csv(body io.Reader, schema *jobs.Schema, rec map[string]any, callback string) error {
	r := batchfile.NewCSVReader(body, u.s.cfg.Batch.MaxRecordBytes)
	head, err := r.Next()
	if err == io.EOF {
		return errorf(CodeInvalidInput, "The CSV is empty; it needs a header row naming the model's inputs.")
	}
	if err != nil {
		return u.readErr(err, r)
	}
	header, err := batchfile.SplitCSV(string(head), nil)
	var d *batchfile.Decoder
	if err == nil {
		d, err = batchfile.NewCSVDecoder(schema, header, u.mode)
	}
	if err != nil {
		return errorf(CodeInvalidInput, "The CSV header is not usable: %s.", err)
	}
	hj, _ := json.Marshal(header)
	rec[jobs.BatchFieldHeader] = string(hj)
	if d.Ignored != nil {
		u.warnings = []jobs.Warning{{Code: jobs.CodeUnknownField,
			Detail: "The model does not take the columns " + strings.Join(d.Ignored, ", ") + "; they are ignored."}}
		wj, _ := json.Marshal(u.warnings)
		rec[jobs.BatchFieldWarnings] = string(wj)
	}
	if err := u.start(rec, callback); err != nil {
		return err
	}
	return u.records(r)
}

// jsonl stores a JSONL body, one object a line.
func (u *batchUpload) jsonl(body io.Reader, rec map[string]any, callback string) error {
	if err := u.start(rec, callback); err != nil {
		return err
	}
	return u.records(batchfile.NewJSONLReader(body, u.s.cfg.Batch.MaxRecordBytes))
}

func (u *batchUpload) records(r *batchfile.Reader) error {
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return u.readErr(err, r)
		}
		if err := u.add(rec); err != nil {
			return err
		}
	}
}

// json stores a {"inputs": [...], "callback_url": "..."} body, each input
// as one JSONL line, reading the list as it streams.
func (u *batchUpload) json(body io.Reader, rec map[string]any, callback string) error {
	dec := json.NewDecoder(bufio.NewReaderSize(body, 256<<10))
	bad := func(err error) error {
		return errorf(CodeBadRequest, `The body must be {"inputs": [...]}: %s.`, jsonProblem(err))
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return bad(fmt.Errorf("it does not start with an object"))
	}
	started := false
	var line bytes.Buffer
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return bad(err)
		}
		switch t {
		case "callback_url":
			if started {
				return errorf(CodeInvalidInput, `Put "callback_url" before "inputs", or in the query string.`)
			}
			if err := dec.Decode(&callback); err != nil {
				return bad(err)
			}
		case "input_url", "output_url", "format":
			var v string
			if err := dec.Decode(&v); err != nil {
				return bad(err)
			}
			u.s3Field(t.(string), v)
		case "options":
			if started {
				return errorf(CodeInvalidInput, `Put "options" before "inputs", or in the query string.`)
			}
			if err := u.options(dec, rec); err != nil {
				return err
			}
		case "inputs":
			if err := u.start(rec, callback); err != nil {
				return err
			}
			started = true
			if t, err := dec.Token(); err != nil || t != json.Delim('[') {
				return errorf(CodeInvalidInput, `"inputs" must be a list of objects.`)
			}
			for dec.More() {
				var raw json.RawMessage
				if err := dec.Decode(&raw); err != nil {
					return bad(err)
				}
				if !utf8.Valid(raw) {
					return utf8Error(raw, fmt.Sprintf("Input %d", u.cw.Rows()))
				}
				line.Reset()
				if err := json.Compact(&line, raw); err != nil {
					return bad(err)
				}
				if err := u.add(line.Bytes()); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return bad(err)
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return bad(err)
			}
		}
	}
	switch {
	case u.isS3() && started:
		return errorf(CodeInvalidInput, `Send "inputs" or "input_url", not both.`)
	case u.isS3():
		return u.s3Batch(rec, callback)
	case !started:
		return errorf(CodeInvalidInput, `The body needs "inputs": a list of objects, or "input_url": an s3:// URL.`)
	}
	return nil
}

// options reads a JSON batch body's "options" (explain, strict, as_of).
func (u *batchUpload) options(dec *json.Decoder, rec map[string]any) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return errorf(CodeBadRequest, `The body must be {"inputs": [...]}: %s.`, jsonProblem(err))
	}
	if !utf8.Valid(raw) {
		return utf8Error(raw, `"options"`)
	}
	o, err := jobs.ParseOptions(raw)
	if err != nil {
		return &Error{Code: CodeInvalidInput, Detail: "The options are not valid.",
			Fields: []jobs.FieldError{{Field: "options", Code: jobs.CodeInvalidValue, Detail: err.Error()}}}
	}
	if o.Explain != nil {
		delete(rec, jobs.BatchFieldExplain)
		if *o.Explain {
			rec[jobs.BatchFieldExplain] = "1"
		}
	}
	var asOf time.Time
	if o.AsOf != "" {
		asOf = o.Mode(time.Time{}).AsOf
	}
	u.setMode(rec, o.Strict, asOf)
	return nil
}
