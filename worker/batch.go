package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/batchfile"
	"github.com/hokusai-ai/inference-queue/internal/cpuclass"
	"github.com/hokusai-ai/inference-queue/internal/wakeup"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker/model"
)

// blockRows is how many rows are decoded and scored as one block (about a
// fifth of a millisecond of work); a scorer pauses, or a batch-only one
// yields its core, between blocks.
const blockRows = 64

// blockPause is the scorer's pause between blocks. A goroutine that only
// yields (runtime.Gosched) stays runnable, and while every processor has a
// runnable goroutine the Go scheduler checks the network only every 10 ms:
// a sync request's next step (its HTTP body, Redis's reply) would sit
// unnoticed that long. Sleeping parks the scorer, so the processor polls
// the network before it resumes. Measured on 2 cores: sync p50 during a
// batch 6.2 ms with yields, 2.3 ms with these pauses, for about 10% of the
// batch's speed.
const blockPause = 20 * time.Microsecond

// batchCPU bounds how many chunks this process scores at once: its cores,
// whatever the number of workers in it. Sync work keeps a short wait for a
// processor because scorers pause between blocks and the chunk window keeps
// task slots free. Measured on 2 cores (tools/batch-bench.sh), leaving one
// core out makes a 1M-row batch about a third slower and sync p99 still
// triples, so the batch takes them all.
var batchCPU = make(chan struct{}, runtime.GOMAXPROCS(0))

// finishChunk stores a chunk's results once: the first run to finish the
// chunk adds it to the done set, moves its staged results into place, counts
// its rows and drops its input; later runs drop their staged copy and change
// nothing else. The run whose chunk completes the batch stamps finished_ms and
// is the one that sends the webhook. Everything expires with the batch record.
// The results reach Redis by a plain SET beforehand (storeChunk): a script's
// arguments are copied twice while Redis serves no one else.
var finishChunk = redis.NewScript(`
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('DEL', KEYS[5]) return {-1, 0} end
if redis.call('HEXISTS', KEYS[1], 'canceled_ms') == 1 then redis.call('DEL', KEYS[5]) return {-2, 0} end
if redis.call('EXISTS', KEYS[5]) == 0 then return {-3, 0} end
local added = redis.call('SADD', KEYS[2], ARGV[1])
if added == 1 then
  redis.call('RENAME', KEYS[5], KEYS[3])
  redis.call('PEXPIRE', KEYS[3], ttl)
  redis.call('HINCRBY', KEYS[1], 'rows_ok', ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'rows_failed', ARGV[3])
  redis.call('HINCRBY', KEYS[1], 'rows_warned', ARGV[5])
  redis.call('DEL', KEYS[4])
  redis.call('PEXPIRE', KEYS[2], ttl)
  local done = redis.call('SCARD', KEYS[2])
  if tostring(done) == redis.call('HGET', KEYS[1], 'chunks') then
    redis.call('HSET', KEYS[1], 'finished_ms', ARGV[4], 'finisher', ARGV[1])
  end
else
  redis.call('DEL', KEYS[5])
end
return {added, redis.call('SCARD', KEYS[2])}
`)

// stagedTTL bounds how long a run's staged results outlive a worker that
// died between staging them and finishing the chunk.
const stagedTTL = 10 * time.Minute

// handleBatchChunk scores one chunk of a batch. A chunk run twice (a retry,
// a worker killed after storing) stores nothing the second time, so every
// row is counted and returned exactly once.
func (w *Worker) handleBatchChunk(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.DecodeBatchChunk(t.Payload())
	if err != nil {
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	log := w.log.With("batch_id", p.BatchID, "chunk", p.Chunk, "model_id", p.ModelID)
	rec, err := w.rdb.HGetAll(ctx, jobs.BatchKey(p.BatchID)).Result()
	if err != nil {
		return err
	}
	if len(rec) == 0 || rec[jobs.BatchFieldCanceled] != "" {
		log.Info("chunk dropped", "outcome", "batch expired or canceled")
		return nil
	}
	done, err := w.rdb.SIsMember(ctx, jobs.BatchDoneKey(p.BatchID), p.Chunk).Result()
	if err != nil {
		return err
	}
	if !done {
		if err := w.scoreChunk(ctx, p, rec); err != nil {
			if !lastAttempt(ctx) || ctx.Err() != nil {
				return err // retried, or back to the queue on shutdown
			}
			// Archiving the task would leave the batch running for ever:
			// fail the chunk's rows instead, so the batch finishes and says so.
			log.Error("chunk failed on its last attempt", "err", err.Error())
			if err := w.failChunk(ctx, p, rec); err != nil {
				return err
			}
		}
	}
	if err := w.queueNext(ctx, p, rec); err != nil {
		return err
	}
	return w.maybeNotify(ctx, p)
}

// queueNext queues chunk n+window when it is stored and not done (its input
// key exists exactly then). The API, storing that chunk, queues it itself
// when chunk n is done by then; both may, and the task id makes it once.
func (w *Worker) queueNext(ctx context.Context, p jobs.BatchChunkPayload, rec map[string]string) error {
	window, err := strconv.Atoi(rec[jobs.BatchFieldWindow])
	if err != nil || window < 1 {
		return fmt.Errorf("batch %s has no chunk window: %w", p.BatchID, asynq.SkipRetry)
	}
	next := jobs.BatchChunkPayload{BatchID: p.BatchID, Chunk: p.Chunk + window, ModelID: p.ModelID}
	n, err := w.rdb.Exists(ctx, jobs.BatchInKey(p.BatchID, next.Chunk)).Result()
	if err != nil || n == 0 {
		return err
	}
	task, err := jobs.NewBatchChunkTask(next, rec[jobs.BatchFieldPool], jobs.BatchChunkRetries)
	if err != nil {
		return err
	}
	_, err = w.enqueuer.EnqueueContext(ctx, task)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil
	}
	if err != nil {
		return err
	}
	// Wake an idle worker of the pool (this one included, once it returns)
	// rather than leave the chunk to the next poll, up to a second away.
	_, err = w.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		wakeup.Push(ctx, p, rec[jobs.BatchFieldPool], jobs.LaneBatch)
		return nil
	})
	return err
}

// scoreChunk scores the chunk's rows and stores the results.
func (w *Worker) scoreChunk(ctx context.Context, p jobs.BatchChunkPayload, rec map[string]string) error {
	m, ok := w.model(p.ModelID)
	if !ok {
		return fmt.Errorf("model %s is not loaded on worker %s", p.ModelID, w.cfg.ID)
	}
	start := time.Now()
	pl := w.rdb.Pipeline()
	pl.HSetNX(ctx, jobs.BatchKey(p.BatchID), jobs.BatchFieldStarted, start.UnixMilli())
	in := pl.Get(ctx, jobs.BatchInKey(p.BatchID, p.Chunk))
	if _, err := pl.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	input, err := in.Result()
	if errors.Is(err, redis.Nil) {
		// Only cancel and expiry remove an input before it is done.
		w.log.Info("chunk dropped", "batch_id", p.BatchID, "chunk", p.Chunk, "outcome", "input gone")
		return nil
	}
	chunkRows, _ := strconv.Atoi(rec[jobs.BatchFieldChunkRows])
	var blob []byte
	var n chunkCounts
	if sc, err := newChunkScorer(m, rec); err != nil {
		// The chunk cannot be read at all (its CSV header no longer fits
		// the loaded model, say): every row fails, and the batch finishes.
		blob, n.failed = unusableChunk(input, p.Chunk*chunkRows, rec, err)
	} else {
		sc.warned = func(s *jobs.Schema, warns []jobs.Warning) { w.metrics.warned(p.ModelID, s, warns) }
		if w.cfg.BatchOnly() {
			// No predicts of its own to let through: between blocks it only
			// offers its core to whatever the kernel has queued there (a
			// sync predict's next step, in another process).
			sc.pause = cpuclass.Yield
		} else {
			// The pauses let this worker's own predicts through (see
			// blockPause).
			sc.pause = func() { time.Sleep(blockPause) }
		}
		select {
		case batchCPU <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		began := time.Now()
		blob, n, err = sc.run(ctx, input, p.Chunk*chunkRows)
		<-batchCPU
		w.metrics.rows(p.ModelID, time.Since(began), n.ok+n.failed)
		noteOf(ctx).rows = n.ok + n.failed
		if err != nil {
			return err
		}
	}
	return w.storeChunk(ctx, p, blob, n, start)
}

// storeChunk stores a chunk's results once (see finishChunk).
func (w *Worker) storeChunk(ctx context.Context, p jobs.BatchChunkPayload, blob []byte, n chunkCounts, start time.Time) error {
	staged := jobs.BatchStagedOutKey(p.BatchID, p.Chunk, uuid.NewString())
	if err := w.rdb.Set(ctx, staged, blob, stagedTTL).Err(); err != nil {
		return fmt.Errorf("stage results of batch %s chunk %d: %w", p.BatchID, p.Chunk, err)
	}
	b := jobs.BatchKey(p.BatchID)
	res, err := finishChunk.Run(ctx, w.rdb,
		[]string{b, jobs.BatchDoneKey(p.BatchID), jobs.BatchOutKey(p.BatchID, p.Chunk), jobs.BatchInKey(p.BatchID, p.Chunk), staged},
		p.Chunk, n.ok, n.failed, time.Now().UnixMilli(), n.warned).Int64Slice()
	if err == nil && res[0] == -3 {
		err = fmt.Errorf("staged results outlived %s", stagedTTL)
	}
	if err != nil {
		return fmt.Errorf("store results of batch %s chunk %d: %w", p.BatchID, p.Chunk, err)
	}
	w.log.Debug("chunk done", "batch_id", p.BatchID, "chunk", p.Chunk, "rows_ok", n.ok, "rows_failed", n.failed, "rows_warned", n.warned,
		"first_time", res[0] == 1, "chunks_done", res[1], "duration_us", time.Since(start).Microseconds())
	return nil
}

// lastAttempt reports whether a failure of this task run is final.
func lastAttempt(ctx context.Context) bool {
	retried, ok1 := asynq.GetRetryCount(ctx)
	most, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && retried >= most
}

// failChunk stores every row of a chunk that failed all its attempts as a
// row error; the cause stays in the worker's log.
func (w *Worker) failChunk(ctx context.Context, p jobs.BatchChunkPayload, rec map[string]string) error {
	input, err := w.rdb.Get(ctx, jobs.BatchInKey(p.BatchID, p.Chunk)).Result()
	if errors.Is(err, redis.Nil) {
		return nil // canceled or expired meanwhile
	}
	if err != nil {
		return err
	}
	chunkRows, _ := strconv.Atoi(rec[jobs.BatchFieldChunkRows])
	most, _ := asynq.GetMaxRetry(ctx)
	blob, failed := failRows(input, p.Chunk*chunkRows, rec, &batchfile.RowError{
		Code: codeChunkFailed, Detail: fmt.Sprintf("Scoring this row's chunk failed %d times; submit these rows again.", most+1)})
	return w.storeChunk(ctx, p, blob, chunkCounts{failed: failed}, time.Now())
}

// unusableChunk fails every row of a chunk with why it cannot be scored.
func unusableChunk(input string, first int, rec map[string]string, cause error) ([]byte, int) {
	// Every row of the chunk stores the cause: a short one.
	return failRows(input, first, rec, &batchfile.RowError{Code: codeBatchUnusable, Detail: batchfile.Clip(cause.Error(), 256)})
}

// failRows fails every row of a chunk of batch rec with e, keeping each
// row's id so partners can still match it.
func failRows(input string, first int, rec map[string]string, e *batchfile.RowError) ([]byte, int) {
	csv := rec[jobs.BatchFieldFormat] == jobs.BatchCSV
	header, _ := batchHeader(rec) // none: no ids
	ids := batchfile.NewIDReader(header, csv)
	out := batchfile.NewResultWriter(nil, len(input)/4)
	n := 0
	for ; input != ""; n++ {
		var r string
		r, input = batchfile.NextRecord(input, csv)
		out.Fail(first+n, ids.ID(r), e)
	}
	return out.Bytes(), n
}

// Row errors of whole chunks: one that cannot be decoded, one that failed
// every attempt.
const (
	codeBatchUnusable = "batch_unusable"
	codeChunkFailed   = "chunk_failed"
)

// chunkScorer decodes a chunk's records into rows and scores them in blocks.
type chunkScorer struct {
	// text caches the codes of text inputs: lead files repeat a few hundred
	// job titles, and the keyword rules cost more than the rest of a row.
	text    []textCodes
	csv     bool
	explain bool
	dec     *batchfile.Decoder
	schema  *jobs.Schema
	engine  *model.Model // nil: score through Model.Predict, one JSON value a row
	model   Model
	cols    []batchfile.Column
	preds   []model.Prediction // reused block after block
	pause   func()             // between blocks; nil: none
	// warned counts input warnings, by model, field and code; by default
	// it does not.
	warned func(*jobs.Schema, []jobs.Warning)
}

// batchHeader reads a CSV batch's header from its record.
func batchHeader(rec map[string]string) ([]string, error) {
	var header []string
	if err := json.Unmarshal([]byte(rec[jobs.BatchFieldHeader]), &header); err != nil {
		return nil, fmt.Errorf("the batch record's header is not a JSON list: %v", err)
	}
	return header, nil
}

func newChunkScorer(m loaded, rec map[string]string) (*chunkScorer, error) {
	sc := &chunkScorer{csv: rec[jobs.BatchFieldFormat] == jobs.BatchCSV, explain: rec[jobs.BatchFieldExplain] == "1",
		schema: &m.info.Schema, model: m.model, warned: func(*jobs.Schema, []jobs.Warning) {}}
	mode := jobs.BatchMode(rec)
	if sc.csv {
		header, err := batchHeader(rec)
		if err != nil {
			return nil, err
		}
		d, err := batchfile.NewCSVDecoder(sc.schema, header, mode)
		if err != nil {
			return nil, err
		}
		sc.dec = d
	} else {
		sc.dec = batchfile.NewJSONDecoder(sc.schema, mode)
	}
	if e, ok := m.model.(interface{ engine() *model.Model }); ok {
		sc.engine = e.engine()
		sc.cols = resultColumns(sc.engine.Task())
		// Feature i encodes input i alone when there are as many of each.
		if sc.engine.Engine().NumFeatures() == len(sc.schema.Fields) {
			for i, f := range sc.schema.Fields {
				if f.Type == jobs.FieldText {
					sc.text = append(sc.text, textCodes{field: i, codes: map[string]float32{}})
				}
			}
		}
	} else {
		sc.cols = []batchfile.Column{{Name: "prediction", Type: batchfile.ColJSON}}
	}
	sc.cols = append(sc.cols, batchfile.Column{Name: "warnings", Type: batchfile.ColWarnings})
	return sc, nil
}

// textCodes caches one text input's feature codes by text.
type textCodes struct {
	field int
	codes map[string]float32
	hit   bool
	saved jobs.Value
}

// maxTextCodes bounds a text cache: past it, new texts are encoded each time.
const maxTextCodes = 4096

// encode is Model.Encode with cached text codes: a text seen before is
// hidden from the model (a missing input costs nothing) and its code put
// back afterwards.
func (sc *chunkScorer) encode(r jobs.Row, x []float32) error {
	for i := range sc.text {
		t := &sc.text[i]
		v := r[t.field]
		_, t.hit = t.codes[v.Str]
		if t.hit && v.Kind == jobs.KindString {
			t.saved, r[t.field] = v, jobs.Value{Kind: jobs.KindMissing}
		} else {
			t.hit = false
		}
	}
	err := sc.engine.Encode(r, x)
	for i := range sc.text {
		t := &sc.text[i]
		switch v := r[t.field]; {
		case t.hit:
			r[t.field] = t.saved
			x[t.field] = t.codes[t.saved.Str]
		case err == nil && v.Kind == jobs.KindString && len(t.codes) < maxTextCodes:
			t.codes[v.Str] = x[t.field]
		}
	}
	return err
}

// resultColumns are a task's result columns, named as in sync predictions.
func resultColumns(task model.Task) []batchfile.Column {
	factors := batchfile.Column{Name: "factors", Type: batchfile.ColList}
	switch task {
	case model.TaskLeadScoring:
		return []batchfile.Column{{Name: "lead_score", Type: batchfile.ColInt},
			{Name: "conversion_probability", Type: batchfile.ColFloat}, {Name: "recommendation", Type: batchfile.ColString},
			{Name: "confidence", Type: batchfile.ColFloat}, factors}
	case model.TaskClassification:
		return []batchfile.Column{{Name: "label", Type: batchfile.ColString}, {Name: "confidence", Type: batchfile.ColFloat},
			{Name: "probabilities", Type: batchfile.ColJSON}, factors}
	}
	return []batchfile.Column{{Name: "value", Type: batchfile.ColFloat}, factors}
}

// blockRow is one row of a block: its number and id, and either why it
// failed or its place in the block's scored rows and its input warnings (a
// JSON list; nil when none).
type blockRow struct {
	row    int
	id     string
	err    *batchfile.RowError
	scored int
	warns  []byte
}

// chunkCounts are a chunk's rows by outcome: scored (some with input
// warnings) or failed.
type chunkCounts struct{ ok, failed, warned int }

// run scores input (the chunk's records; row numbers start at first) and
// returns the encoded results and the counts. Records and their fields are
// substrings of input: a row allocates next to nothing.
func (sc *chunkScorer) run(ctx context.Context, input string, first int) (blob []byte, n chunkCounts, err error) {
	out := batchfile.NewResultWriter(sc.cols, len(input))
	nfields := len(sc.schema.Fields)
	var nf int
	if sc.engine != nil {
		nf = sc.engine.Engine().NumFeatures()
	}
	X := make([]float32, 0, blockRows*nf)
	rows := make([]jobs.Row, 0, blockRows)
	vals := make([]jobs.Value, blockRows*nfields)
	block := make([]blockRow, 0, blockRows)
	row := first
	for end := false; !end; {
		block, X, rows = block[:0], X[:0], rows[:0]
		for len(block) < blockRows {
			if input == "" {
				end = true
				break
			}
			var rec string
			rec, input = batchfile.NextRecord(input, sc.csv)
			r := vals[len(block)*nfields : (len(block)+1)*nfields]
			var id string
			var rerr *batchfile.RowError
			if sc.csv {
				id, rerr = sc.dec.CSV(rec, r)
			} else {
				id, rerr = sc.dec.JSON([]byte(rec), r)
			}
			if rerr == nil && sc.engine != nil {
				X = X[:len(X)+nf]
				if err := sc.encode(r, X[len(X)-nf:]); err != nil {
					X = X[:len(X)-nf]
					rerr = &batchfile.RowError{Code: jobs.CodeInvalidInput, Detail: err.Error()}
				}
			}
			b := blockRow{row: row, id: id, err: rerr, scored: len(rows)}
			if rerr == nil {
				rows = append(rows, r)
				if len(sc.dec.Warnings) > 0 {
					b.warns = batchfile.EncodeWarnings(sc.dec.Warnings, len(rec))
					sc.warned(sc.schema, sc.dec.Warnings)
				}
			}
			block = append(block, b)
			row++
		}
		scored, warned, err := sc.score(out, block, rows, X)
		if err != nil {
			return nil, chunkCounts{}, err
		}
		n.ok += scored
		n.warned += warned
		n.failed += len(block) - scored
		if err := ctx.Err(); err != nil {
			return nil, chunkCounts{}, err
		}
		if sc.pause != nil {
			sc.pause()
		}
	}
	return out.Bytes(), n, nil
}

// score scores a block's valid rows and writes every row's result in order.
// It returns how many rows were scored, and how many of those had warnings.
func (sc *chunkScorer) score(out *batchfile.ResultWriter, block []blockRow, rows []jobs.Row, X []float32) (scored, warned int, _ error) {
	if len(rows) == 0 {
		writeFailed(out, block)
		return 0, 0, nil
	}
	var preds []model.Prediction
	var values []any
	var err error
	switch {
	case sc.engine != nil && sc.explain:
		preds, err = sc.engine.PredictFeatures(X)
	case sc.engine != nil:
		preds, err = sc.engine.ScoreFeaturesInto(X, sc.preds)
		sc.preds = preds
	default:
		values, err = sc.model.Predict(rows, sc.explain)
	}
	if err != nil {
		for i := range block {
			if block[i].err == nil {
				block[i].err = &batchfile.RowError{Code: codeModelFailed, Detail: "The model could not score this row."}
			}
		}
		writeFailed(out, block)
		return 0, 0, nil
	}
	for _, b := range block {
		if b.err != nil {
			out.Fail(b.row, b.id, b.err)
			continue
		}
		out.OK(b.row, b.id)
		if preds != nil {
			writePrediction(out, &preds[b.scored])
		} else {
			j, err := json.Marshal(values[b.scored])
			if err != nil {
				return 0, 0, fmt.Errorf("encode prediction: %w", err)
			}
			out.JSON(j)
		}
		out.JSON(b.warns)
		if b.warns != nil {
			warned++
		}
	}
	return len(rows), warned, nil
}

func writeFailed(out *batchfile.ResultWriter, block []blockRow) {
	for _, b := range block {
		out.Fail(b.row, b.id, b.err)
	}
}

// writePrediction writes the values of resultColumns(p.Task).
func writePrediction(out *batchfile.ResultWriter, p *model.Prediction) {
	switch p.Task {
	case model.TaskLeadScoring:
		out.Int(int64(p.LeadScore))
		out.Float(p.ConversionProbability)
		out.String(p.Recommendation)
		out.Float(p.Confidence)
	case model.TaskClassification:
		out.String(p.Label)
		out.Float(p.Confidence)
		probs := make(map[string]float64, len(p.Classes))
		for i, c := range p.Classes {
			probs[c] = p.Probabilities[i]
		}
		j, _ := json.Marshal(probs)
		out.JSON(j)
	default:
		out.Float(p.Value)
	}
	out.List(p.Factors)
}

// engine gives the batch path the model runtime behind a folder model.
func (f *folderModel) engine() *model.Model { return f.m }

// maybeNotify schedules the completion webhook when this chunk finished the
// batch (see delivery.go).
func (w *Worker) maybeNotify(ctx context.Context, p jobs.BatchChunkPayload) error {
	rec, err := w.rdb.HGetAll(ctx, jobs.BatchKey(p.BatchID)).Result()
	if err != nil {
		return err
	}
	if rec[jobs.BatchFieldFinisher] != strconv.Itoa(p.Chunk) || rec[jobs.BatchFieldCanceled] != "" {
		return nil // another chunk's, or the cancel's notify task's
	}
	return w.scheduleWebhook(ctx, p.BatchID, rec)
}

// handleBatchNotify schedules a canceled batch's webhook.
func (w *Worker) handleBatchNotify(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.DecodeBatchNotify(t.Payload())
	if err != nil {
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	rec, err := w.rdb.HGetAll(ctx, jobs.BatchKey(p.BatchID)).Result()
	if err != nil || rec[jobs.BatchFieldCanceled] == "" {
		return err // expired, or not canceled: nothing to announce here
	}
	return w.scheduleWebhook(ctx, p.BatchID, rec)
}
