// Writing an S3 batch's output: the results and the errors file as
// multipart uploads fed in input order, and the _SUCCESS manifest.

package worker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/batchfile"
	"github.com/hokusai-ai/inference-queue/internal/s3url"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker/objstore"
)

// exportState is the export checkpoint, in the batch record: the chunks
// written so far and each output's upload. What an output has rendered
// but not uploaded yet is kept beside it (jobs.BatchS3ExportKey).
type exportState struct {
	Next    int             `json:"next"`
	Outputs [2]*outputState `json:"outputs"`
}

type outputState struct {
	UploadID string          `json:"upload_id,omitempty"`
	Parts    []objstore.Part `json:"parts"`
	Bytes    int64           `json:"bytes"` // rendered so far
	SHA      []byte          `json:"sha"`   // the SHA-256 state over those bytes
	Rows     int             `json:"rows"`
	Failed   int             `json:"failed"`
	Done     bool            `json:"done,omitempty"` // the object is written
}

// output is one file being written.
type output struct {
	name  string
	url   s3url.URL
	ctype string
	st    *outputState
	tally *batchfile.Tally
	buf   bytes.Buffer // rendered, not uploaded
	w     *bufio.Writer
	sum   hash.Hash
	// counted is how much of buf is in sum and st.Bytes: w also writes into
	// buf on its own, whenever a chunk renders to more than its size.
	counted int
	synced  bool // buf is as the checkpoint has it
}

// exporter writes the outputs of one S3 batch run.
type exporter struct {
	r       *s3Run
	state   exportState
	outs    [2]*output // results, errors
	deleted int        // out keys below this are gone
	primed  bool       // the renderers have their columns
	// last is the state as the last checkpoint wrote it: an upload
	// started, or an output written, is recorded into it at once.
	last exportState
}

func newExporter(ctx context.Context, r *s3Run) (*exporter, error) {
	x := &exporter{r: r}
	ext, ctype := "csv", "text/csv; charset=utf-8"
	var res, errs batchfile.Renderer = &batchfile.CSVRenderer{}, batchfile.FailedOnly{Renderer: &batchfile.CSVRenderer{}}
	if r.rec.Format != jobs.BatchCSV {
		ext, ctype = "jsonl", "application/x-ndjson"
		res, errs = &batchfile.JSONLRenderer{}, batchfile.FailedOnly{Renderer: &batchfile.JSONLRenderer{}}
	}
	if r.rec.S3Export != "" {
		if err := json.Unmarshal([]byte(r.rec.S3Export), &x.state); err != nil {
			return nil, failBatch(jobs.BatchErrOutput, "The export checkpoint is unreadable: %s.", err)
		}
	}
	x.deleted = x.state.Next
	keys := make([]string, 2)
	for i, name := range []string{"results", "errors"} {
		st := x.state.Outputs[i]
		if st == nil {
			st = &outputState{}
			x.state.Outputs[i] = st
		}
		o := &output{name: name, url: s3url.URL{Bucket: r.out.Bucket, Key: r.out.Key + name + "." + ext}, ctype: ctype,
			st: st, tally: &batchfile.Tally{Renderer: []batchfile.Renderer{res, errs}[i], Rows: st.Rows, Failed: st.Failed},
			sum: sha256.New()}
		if st.SHA != nil {
			if err := o.sum.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.SHA); err != nil {
				return nil, failBatch(jobs.BatchErrOutput, "The export checkpoint is unreadable: %s.", err)
			}
		}
		o.w = bufio.NewWriterSize(&o.buf, 64<<10)
		x.outs[i] = o
		keys[i] = jobs.BatchS3ExportKey(r.id, name)
	}
	b, _ := json.Marshal(x.state)
	_ = json.Unmarshal(b, &x.last) // a copy
	pending, err := r.w.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	for i, v := range pending {
		if s, ok := v.(string); ok {
			x.outs[i].buf.WriteString(s)
			x.outs[i].counted = len(s) // in the checkpoint's checksum and bytes
		}
		x.outs[i].synced = true
	}
	return x, nil
}

// step writes the scored chunks that come next in input order, below
// stored; it returns how many it wrote.
func (x *exporter) step(ctx context.Context, stored int) (int, error) {
	n := 0
	for x.state.Next < stored {
		blob, err := x.r.w.rdb.Get(ctx, jobs.BatchOutKey(x.r.id, x.state.Next)).Bytes()
		if errors.Is(err, redis.Nil) {
			break // not scored yet
		}
		if err != nil {
			return n, err
		}
		if !x.primed && x.state.Next > 0 {
			if err := x.prime(blob); err != nil {
				return n, err
			}
		}
		x.primed = true
		for _, o := range x.outs {
			if err := batchfile.RenderChunk(o.w, o.tally, blob, x.state.Next == 0, nil); err != nil {
				return n, fmt.Errorf("render chunk %d: %w", x.state.Next, err)
			}
			o.flush()
		}
		x.state.Next++
		n++
		uploaded := false
		for _, o := range x.outs {
			if o.buf.Len() >= x.r.w.cfg.S3PartBytes {
				if err := x.upload(ctx, o); err != nil {
					return n, err
				}
				uploaded = true
			}
		}
		if uploaded {
			if err := x.checkpoint(ctx); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// prime gives the renderers of a resumed run the columns the header of
// the first run gave them (a CSV's failed rows leave them empty), writing
// the header nowhere.
func (x *exporter) prime(blob []byte) error {
	rr, err := batchfile.NewResultReader(blob)
	if err != nil {
		return err
	}
	discard := bufio.NewWriter(io.Discard)
	for _, o := range x.outs {
		if err := o.tally.Header(discard, rr.Cols); err != nil {
			return err
		}
	}
	return nil
}

// flush moves what the renderer wrote into buf, and counts what buf holds
// beyond counted in the checksum and the bytes.
func (o *output) flush() {
	_ = o.w.Flush() // into a bytes.Buffer: no error
	o.sum.Write(o.buf.Bytes()[o.counted:])
	o.st.Bytes += int64(o.buf.Len() - o.counted)
	o.counted = o.buf.Len()
	o.st.Rows, o.st.Failed = o.tally.Rows, o.tally.Failed
	o.synced = false
}

// upload sends o's rendered bytes as its next part, starting its upload
// first if need be (recorded at once, so it can be aborted after a crash).
func (x *exporter) upload(ctx context.Context, o *output) error {
	s3 := x.r.w.cfg.S3
	if o.st.UploadID == "" {
		id, err := s3.Create(ctx, o.url, o.ctype)
		if err != nil {
			return err
		}
		o.st.UploadID = id
		if err := x.record(ctx, o, func(st *outputState) { st.UploadID = id }); err != nil {
			return err
		}
	}
	part, err := s3.UploadPart(ctx, o.url, o.st.UploadID, int32(len(o.st.Parts)+1), o.buf.Bytes())
	if err != nil {
		return err
	}
	o.st.Parts = append(o.st.Parts, part)
	o.buf.Reset()
	o.counted = 0
	o.synced = false
	return nil
}

// record changes o's output in the last checkpoint's state and writes
// that: the rest of the state moves on only with a checkpoint.
func (x *exporter) record(ctx context.Context, o *output, change func(*outputState)) error {
	for i := range x.outs {
		if x.outs[i] == o {
			change(x.last.Outputs[i])
		}
	}
	b, _ := json.Marshal(x.last)
	return x.r.w.rdb.HSet(ctx, jobs.BatchKey(x.r.id), jobs.BatchFieldS3Export, string(b)).Err()
}

// checkpoint records the state, each output's bytes not yet uploaded, and
// drops the results of the chunks written, in one transaction.
func (x *exporter) checkpoint(ctx context.Context) error {
	ttl := x.r.cw.TTL
	for _, o := range x.outs {
		o.st.SHA, _ = o.sum.(encoding.BinaryMarshaler).MarshalBinary()
	}
	b, _ := json.Marshal(x.state)
	_, err := x.r.w.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, jobs.BatchKey(x.r.id), jobs.BatchFieldS3Export, string(b))
		for _, o := range x.outs {
			if !o.synced {
				p.Set(ctx, jobs.BatchS3ExportKey(x.r.id, o.name), o.buf.Bytes(), ttl)
			}
		}
		for n := x.deleted; n < x.state.Next; n++ {
			p.Unlink(ctx, jobs.BatchOutKey(x.r.id, n))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("checkpoint the export: %w", err)
	}
	x.deleted = x.state.Next
	for _, o := range x.outs {
		o.synced = true
	}
	x.last = exportState{}
	return json.Unmarshal(b, &x.last)
}

// finish writes the outputs' last bytes, completes their uploads, writes
// the manifest and marks the batch written; then its webhook is due. A run
// that dies in here comes back to it from the last checkpoint.
func (x *exporter) finish(ctx context.Context) error {
	if err := x.checkpoint(ctx); err != nil {
		return err
	}
	res := x.outs[0]
	status := jobs.BatchPartiallyFailed
	switch res.tally.Failed {
	case 0:
		status = jobs.BatchSucceeded
	case res.tally.Rows:
		status = jobs.BatchFailed
	}
	if err := res.tally.End(res.w, res.tally.Rows, status); err != nil {
		return err
	}
	res.flush()
	for _, o := range x.outs {
		if err := x.complete(ctx, o); err != nil {
			return err
		}
	}
	if err := x.manifest(ctx, status); err != nil {
		return err
	}
	pl := x.r.w.rdb.TxPipeline()
	pl.HSet(ctx, jobs.BatchKey(x.r.id), jobs.BatchFieldExported, time.Now().UnixMilli())
	for _, o := range x.outs {
		pl.Unlink(ctx, jobs.BatchS3ExportKey(x.r.id, o.name))
	}
	if _, err := pl.Exec(ctx); err != nil {
		return err
	}
	x.r.log.Info("S3 batch written", "rows", res.tally.Rows, "failed", res.tally.Failed, "results", res.url.String(),
		"results_bytes", res.st.Bytes, "parts", len(res.st.Parts))
	rec, _, err := x.r.w.batchRecord(ctx, x.r.id)
	if err != nil {
		return err
	}
	return x.r.w.scheduleWebhook(ctx, x.r.id, rec)
}

// complete ends o's upload with its last part, or, when it never reached a
// part's size, writes it whole (aborting an upload started and unused).
func (x *exporter) complete(ctx context.Context, o *output) error {
	if o.st.Done {
		return nil
	}
	s3 := x.r.w.cfg.S3
	var err error
	switch {
	case len(o.st.Parts) == 0:
		err = s3.Put(ctx, o.url, o.buf.Bytes(), o.ctype)
		if err == nil && o.st.UploadID != "" {
			err = s3.Abort(ctx, o.url, o.st.UploadID)
		}
	case o.buf.Len() > 0:
		// An upload an earlier run completed has no parts to take: then
		// Complete finds its object.
		if err = x.upload(ctx, o); err != nil && !objstore.IsNoSuchUpload(err) {
			return err
		}
		fallthrough
	default:
		err = s3.Complete(ctx, o.url, o.st.UploadID, o.st.Parts, o.st.Bytes)
	}
	if err != nil {
		return err
	}
	o.st.Done = true
	return x.record(ctx, o, func(st *outputState) { st.Done = true })
}

// abort gives up the outputs' uploads (a canceled or failed batch).
func (x *exporter) abort(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, o := range x.outs {
		if o.st.UploadID == "" {
			continue
		}
		if err := x.r.w.cfg.S3.Abort(ctx, o.url, o.st.UploadID); err != nil {
			x.r.log.Warn("S3 upload not aborted", "output", o.url.String(), "err", err.Error())
		}
	}
	_ = x.r.w.rdb.Unlink(ctx, jobs.BatchS3ExportKey(x.r.id, "results"), jobs.BatchS3ExportKey(x.r.id, "errors")).Err()
}

// s3Manifest is the _SUCCESS object: what was read, what was written.
type s3Manifest struct {
	BatchID       string          `json:"batch_id"`
	ModelID       string          `json:"model_id"`
	ModelRevision string          `json:"model_revision"`
	Status        string          `json:"status"`
	Rows          int             `json:"rows"`
	Failed        int             `json:"failed"`
	Input         manifestFile    `json:"input"`
	Outputs       [2]manifestFile `json:"outputs"`
	FinishedAt    time.Time       `json:"finished_at"`
}

type manifestFile struct {
	URL    string `json:"url"`
	Bytes  int64  `json:"bytes,omitempty"`
	SHA256 string `json:"sha256"`
	Rows   int    `json:"rows"`
}

func (x *exporter) manifest(ctx context.Context, status string) error {
	fields, err := x.r.w.rdb.HMGet(ctx, jobs.BatchKey(x.r.id), jobs.BatchFieldInputSHA, jobs.BatchFieldRows).Result()
	if err != nil {
		return err
	}
	m := s3Manifest{BatchID: x.r.id, ModelID: x.r.rec.ModelID, Status: status, Rows: x.outs[0].tally.Rows,
		Failed: x.outs[0].tally.Failed, FinishedAt: time.Now().UTC(),
		Input: manifestFile{URL: x.r.in.String(), Rows: x.outs[0].tally.Rows}}
	if sum, ok := fields[0].(string); ok {
		m.Input.SHA256 = sum
	}
	if l, ok := x.r.w.model(x.r.rec.ModelID); ok {
		m.ModelRevision = l.info.Revision
	}
	for i, o := range x.outs {
		m.Outputs[i] = manifestFile{URL: o.url.String(), Bytes: o.st.Bytes, SHA256: hex.EncodeToString(o.sum.Sum(nil)),
			Rows: o.tally.Rows}
	}
	m.Outputs[1].Rows = x.outs[1].tally.Failed
	b, _ := json.MarshalIndent(m, "", "  ")
	return x.r.w.cfg.S3.Put(ctx, s3url.URL{Bucket: x.r.out.Bucket, Key: x.r.out.Key + "_SUCCESS"}, append(b, '\n'), "application/json")
}
