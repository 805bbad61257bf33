// Decoding and scoring a chunk's rows in blocks, and writing their results.

package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hokusai-ai/inference-queue/internal/batchfile"
	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker/model"
)

// blockRows is how many rows are decoded and scored as one block (about a
// fifth of a millisecond of work); a scorer pauses, or a batch-only one
// yields its core, between blocks.
const blockRows = 64

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

func newChunkScorer(m loaded, rec jobs.BatchRecord) (*chunkScorer, error) {
	sc := &chunkScorer{csv: rec.Format == jobs.BatchCSV, explain: rec.Explain,
		schema: &m.info.Schema, model: m.model, warned: func(*jobs.Schema, []jobs.Warning) {}}
	mode := rec.Mode()
	if sc.csv {
		header, err := rec.CSVHeader()
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
type chunkCounts struct {
	ok, failed, warned int
	compute            time.Duration // decoding and scoring
}

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
				block[i].err = &batchfile.RowError{Code: jobs.OutcomeModelFailed, Detail: "The model could not score this row."}
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
