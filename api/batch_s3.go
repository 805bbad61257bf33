// S3 batches: {"input_url": "s3://...", "output_url": "s3://..."} instead
// of rows. The API checks the locations and records the batch; a worker
// reads the input and writes the output (the API never links an S3
// client).

package api

import (
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
	invalid := func(field, detail string) error {
		return &Error{Code: CodeInvalidInput, Detail: "The S3 batch request is not valid.",
			Fields: []jobs.FieldError{{Field: field, Code: jobs.CodeInvalidValue, Detail: detail}}}
	}
	in, err := s3url.Parse(u.s3.input)
	if err != nil {
		return invalid("input_url", err.Error())
	}
	if u.s3.output == "" {
		return invalid("output_url", "An S3 batch needs an output_url, s3://bucket/prefix/, to write its results to.")
	}
	out, err := s3url.ParsePrefix(u.s3.output)
	if err != nil {
		return invalid("output_url", err.Error())
	}
	key, gz := strings.CutSuffix(in.Key, ".gz")
	format := u.s3.format
	if format == "" {
		for ext, f := range s3Formats {
			if strings.HasSuffix(key, ext) {
				format = f
			}
		}
	}
	if format != jobs.BatchCSV && format != jobs.BatchJSONL {
		return invalid("format", `Say "format": "csv" or "jsonl" (the input's name does not end in .csv, .jsonl or .ndjson, optionally .gz).`)
	}
	lim := u.s.cfg.Batch
	for _, loc := range []s3url.URL{in, out} {
		ok, err := u.s.cfg.S3Allow.Check(u.ctx, u.s.rdb, rec[jobs.BatchFieldTenant].(string), loc)
		if err != nil {
			return u.redisErr(err)
		}
		if !ok {
			return errorf(CodeForbidden, "%s is not on the S3 allow-list; an operator adds it with HOKUSAI_S3_ALLOW or hokusai s3 allow.", loc)
		}
	}
	rec[jobs.BatchFieldFormat] = format
	rec[jobs.BatchFieldInputURL], rec[jobs.BatchFieldOutputURL] = in.String(), out.String()
	rec[jobs.BatchFieldMaxBytes], rec[jobs.BatchFieldMaxRows], rec[jobs.BatchFieldMaxRecord] = lim.MaxBytes, lim.MaxRows, lim.MaxRecordBytes
	if gz {
		rec[jobs.BatchFieldGzip] = "1"
	}
	return u.start(rec, callback)
}

// enqueueS3 queues the S3 batch's task once its record is written.
func (u *batchUpload) enqueueS3() error {
	task, err := jobs.NewBatchS3Task(u.id, u.spec.Pool)
	if err != nil {
		return err
	}
	return u.cw.Queue(u.ctx, task)
}
