// S3 batches: {"input_url": "s3://...", "output_url": "s3://..."} instead
// of rows. The API checks the locations and records the batch; a worker
// reads the input and writes the output (the API never links an S3
// client).

package api

import (
	"context"
	"strings"

	"github.com/hokusai-ai/inference-queue/internal/s3url"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// s3Source is an S3 batch's request, as read from a JSON body.
type s3Source struct {
	input, output, format string
}

// s3Field reads one of an S3 batch's keys from a JSON body.
func (u *batchUpload) s3Field(name, value string) {
	if u.s3 == nil {
		u.s3 = &s3Source{}
	}
	switch name {
	case "input_url":
		u.s3.input = value
	case "output_url":
		u.s3.output = value
	default:
		u.s3.format = value
	}
}

// isS3 reports whether the body asked for an S3 batch ("format" alone,
// which a rows body may carry, does not).
func (u *batchUpload) isS3() bool { return u.s3 != nil && (u.s3.input != "" || u.s3.output != "") }

// s3Formats maps an input key's extension to its format.
var s3Formats = map[string]string{".csv": jobs.BatchCSV, ".jsonl": jobs.BatchJSONL, ".ndjson": jobs.BatchJSONL}

// s3Batch checks an S3 batch's locations against the allow-lists and
// writes its record; finish queues its task.
func (u *batchUpload) s3Batch(rec map[string]any, callback string) error {
	loc, err := u.s.s3Locations(u.ctx, u.key.Tenant, *u.s3)
	if err != nil {
		return u.chunkErr(err) // a refusal as it is, else Redis's failure
	}
	lim := u.s.cfg.Batch
	rec[jobs.BatchFieldFormat] = loc.format
	rec[jobs.BatchFieldInputURL], rec[jobs.BatchFieldOutputURL] = loc.in.String(), loc.out.String()
	rec[jobs.BatchFieldMaxBytes], rec[jobs.BatchFieldMaxRows], rec[jobs.BatchFieldMaxRecord] = lim.MaxBytes, lim.MaxRows, lim.MaxRecordBytes
	rec[jobs.BatchFieldGzipRatio] = u.s.cfg.GzipMaxRatio
	if loc.gz {
		rec[jobs.BatchFieldGzip] = "1"
	}
	// The worker counts the rows as it reads them, against the limits of
	// the submission's time.
	key, tenant := u.s.batchRowLimits(u.key)
	rec[jobs.BatchFieldRowLimitKey], rec[jobs.BatchFieldRowLimitTenant] = key.String(), tenant.String()
	return u.start(rec, callback)
}

// s3Checked is an S3 batch's request once checked.
type s3Checked struct {
	in, out s3url.URL
	format  string
	gz      bool
}

// s3Locations parses an S3 batch's locations, checks them against
// tenant's allow-lists, and names its format (from its input's name if
// not given). A refusal is an *Error; any other error is Redis's.
func (s *Server) s3Locations(ctx context.Context, tenant string, src s3Source) (s3Checked, error) {
	invalid := func(field, detail string) error {
		return &Error{Code: CodeInvalidInput, Detail: "The S3 batch request is not valid.",
			Fields: []jobs.FieldError{{Field: field, Code: jobs.CodeInvalidValue, Detail: detail}}}
	}
	var c s3Checked
	var err error
	if c.in, err = s3url.Parse(src.input); err != nil {
		return c, invalid("input_url", err.Error())
	}
	if src.output == "" {
		return c, invalid("output_url", "An S3 batch needs an output_url, s3://bucket/prefix/, to write its results to.")
	}
	if c.out, err = s3url.ParsePrefix(src.output); err != nil {
		return c, invalid("output_url", err.Error())
	}
	var key string
	key, c.gz = strings.CutSuffix(c.in.Key, ".gz")
	c.format = src.format
	if c.format == "" {
		for ext, f := range s3Formats {
			if strings.HasSuffix(key, ext) {
				c.format = f
			}
		}
	}
	if c.format != jobs.BatchCSV && c.format != jobs.BatchJSONL {
		return c, invalid("format", `Say "format": "csv" or "jsonl" (the input's name does not end in .csv, .jsonl or .ndjson, optionally .gz).`)
	}
	for _, loc := range []s3url.URL{c.in, c.out} {
		ok, err := s.cfg.S3Allow.Check(ctx, s.rdb, tenant, loc)
		if err != nil {
			return c, err
		}
		if !ok {
			return c, errorf(CodeForbidden, "%s is not on the S3 allow-list; an operator adds it with HOKUSAI_S3_ALLOW or hokusai s3 allow.", loc)
		}
	}
	return c, nil
}

// enqueueS3 queues the S3 batch's task once its record is written.
func (u *batchUpload) enqueueS3() error {
	task, err := jobs.NewBatchS3Task(u.id, u.spec.Pool)
	if err != nil {
		return err
	}
	return u.cw.Queue(u.ctx, task)
}
