package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/hokusai-ai/inference-queue/jobs"
	"github.com/hokusai-ai/inference-queue/worker/model"
	"github.com/hokusai-ai/inference-queue/worker/model/tree"
)

const modelUsage = `usage:
  hokusai model predict MODEL [--input FILE] [--explain]
  hokusai model bench MODEL [--rows N]
MODEL is a model folder (config.json + model file) or a bare model file (.json, .ubj, .txt).`

// runModel runs a model locally, with no Redis and no Hub: `predict` scores
// JSONL rows, `bench` times the engine.
func runModel(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(modelUsage) //nolint:staticcheck // ST1005: the usage text is the message
	}
	switch args[0] {
	case "predict":
		return modelPredict(ctx, args[1:], stdin, stdout, stderr)
	case "bench":
		return modelBench(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown model command %q\n%s", args[0], modelUsage)
}

// parseModelArgs parses fs from args, which hold exactly one positional
// MODEL before, between or after the flags.
func parseModelArgs(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() == 0 {
		return "", fmt.Errorf("%s needs a MODEL folder or file\n%s", fs.Name(), modelUsage)
	}
	path := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return "", err
	}
	if fs.NArg() != 0 {
		return "", fmt.Errorf("%s takes one MODEL, got also %q\n%s", fs.Name(), fs.Args(), modelUsage)
	}
	return path, nil
}

// loaded is what MODEL names: a bare engine, or a folder with its head.
type loaded struct {
	engine *tree.Model
	folder *model.Model // nil for a bare model file
}

func loadModel(path string) (loaded, error) {
	info, err := os.Stat(path)
	if err != nil {
		return loaded{}, err
	}
	if info.IsDir() {
		m, err := model.Load(path)
		if err != nil {
			return loaded{}, err
		}
		return loaded{engine: m.Engine(), folder: m}, nil
	}
	e, err := tree.Load(path)
	if errors.Is(err, tree.ErrPickle) {
		return loaded{}, fmt.Errorf("%w; convert it with `/usr/bin/python3 %s %s model.json`", err, model.Converter, path)
	}
	if err != nil {
		return loaded{}, err
	}
	return loaded{engine: e}, nil
}

func modelPredict(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("model predict", flag.ContinueOnError)
	fs.SetOutput(stderr)
	input := fs.String("input", "", "JSONL `FILE` of rows (default stdin)")
	explain := fs.Bool("explain", false, "add per-feature contributions (TreeSHAP, bias last)")
	path, err := parseModelArgs(fs, args)
	if err != nil {
		return err
	}
	m, err := loadModel(path)
	if err != nil {
		return err
	}
	in := stdin
	if *input != "" {
		f, err := os.Open(*input)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	out := bufio.NewWriter(stdout)
	p := newPredictor(m, *explain)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		if err := ctx.Err(); err != nil {
			return errors.Join(err, out.Flush())
		}
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		b, err := p.predictLine([]byte(text))
		if err != nil {
			return errors.Join(fmt.Errorf("line %d: %w", line, err), out.Flush())
		}
		// A bufio.Writer's errors stick: the Flush below reports them.
		_, _ = out.Write(b)
		_ = out.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return errors.Join(fmt.Errorf("line %d: %w", line+1, err), out.Flush())
	}
	return out.Flush()
}

// predictor holds one model and the buffers every line reuses.
type predictor struct {
	loaded
	explain bool
	warns   []jobs.Warning // what lax parsing assumed of the line's inputs
	x       []float32
	pred    []float64
	margin  []float64
	contrib []float64
}

func newPredictor(m loaded, explain bool) *predictor {
	e := m.engine
	return &predictor{
		loaded: m, explain: explain,
		x:       make([]float32, e.NumFeatures()),
		pred:    make([]float64, e.PredictWidth()),
		margin:  make([]float64, e.NumOutputs()),
		contrib: make([]float64, e.NumOutputs()*(e.NumFeatures()+1)),
	}
}

// predictLine answers one JSONL line: an array of feature values in model
// order (null = missing) or, for folders, an object of named inputs.
func (p *predictor) predictLine(line []byte) ([]byte, error) {
	var v any
	if err := json.Unmarshal(line, &v); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	p.warns = nil
	switch row := v.(type) {
	case []any:
		if err := p.fromArray(row); err != nil {
			return nil, err
		}
	case map[string]any:
		if p.folder == nil {
			return nil, errors.New("a bare model file takes an array of feature values, not an object of named inputs")
		}
		// Read as the API reads a request: laxly, timelines as of now.
		valid, errs, warns := p.folder.Schema().Parse(row, jobs.Mode{AsOf: time.Now()})
		p.warns = warns
		if errs != nil {
			msgs := make([]string, len(errs))
			for i, e := range errs {
				msgs[i] = fmt.Sprintf("%s (%s)", e.Error(), e.Code)
			}
			return nil, fmt.Errorf("invalid input: %s", strings.Join(msgs, "; "))
		}
		if err := p.folder.Encode(valid, p.x); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("want a JSON array of feature values or an object of named inputs")
	}
	return p.answer()
}

func (p *predictor) fromArray(row []any) error {
	if len(row) != len(p.x) {
		return fmt.Errorf("got %d feature values, the model takes %d", len(row), len(p.x))
	}
	for i, v := range row {
		switch v := v.(type) {
		case nil:
			p.x[i] = float32(math.NaN())
		case float64:
			p.x[i] = float32(v)
		case bool:
			p.x[i] = 0
			if v {
				p.x[i] = 1
			}
		default:
			return fmt.Errorf("feature value %d is %T; want a number, a boolean or null", i, v)
		}
	}
	return nil
}

// answer runs the engine (and the head, for folders) on p.x.
func (p *predictor) answer() ([]byte, error) {
	e := p.engine
	e.PredictRow(p.x, p.pred)
	e.MarginRow(p.x, p.margin)
	out := struct {
		Prediction    any            `json:"prediction"`
		Margin        any            `json:"margin"`
		Contributions any            `json:"contributions,omitempty"`
		Warnings      []jobs.Warning `json:"warnings,omitempty"`
	}{Prediction: oneOrAll(p.pred), Margin: oneOrAll(p.margin), Warnings: p.warns}
	if p.explain {
		e.Contributions(p.x, p.contrib)
		out.Contributions = p.contrib
		if k := e.NumOutputs(); k > 1 {
			stride := e.NumFeatures() + 1
			groups := make([][]float64, k)
			for g := range groups {
				groups[g] = p.contrib[g*stride : (g+1)*stride]
			}
			out.Contributions = groups
		}
	}
	b, err := json.Marshal(out)
	if err != nil || p.folder == nil {
		return b, err
	}
	preds, err := p.folder.PredictFeatures(p.x)
	if err != nil {
		return nil, err
	}
	h, err := json.Marshal(preds[0])
	if err != nil {
		return nil, err
	}
	// Splice the head's fields after the engine's: {...engine, ...head}.
	b[len(b)-1] = ','
	return append(b, h[1:]...), nil
}

// oneOrAll is a number for one value and the list otherwise.
func oneOrAll(v []float64) any {
	if len(v) == 1 {
		return v[0]
	}
	return v
}

func modelBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("model bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nrows := fs.Int("rows", 10000, "number of synthetic `N` rows")
	path, err := parseModelArgs(fs, args)
	if err != nil {
		return err
	}
	if *nrows < 1 {
		return fmt.Errorf("--rows must be at least 1, got %d", *nrows)
	}
	m, err := loadModel(path)
	if err != nil {
		return err
	}
	e := m.engine
	nf, k := e.NumFeatures(), e.NumOutputs()
	X := syntheticRows(*nrows, nf)
	fmt.Fprintf(stdout, "model %s: features=%d outputs=%d trees=%d objective=%s\n", path, nf, k, e.NumTrees(), e.Objective())
	fmt.Fprintf(stdout, "%d synthetic rows: standard normal values, 10%% missing\n", *nrows)

	out := make([]float64, *nrows*e.PredictWidth())
	single, err := timePerRow(ctx, *nrows, func() {
		for r := range *nrows {
			e.PredictRow(X[r*nf:(r+1)*nf], out[r*e.PredictWidth():])
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "single-row predict: %.1f ns/row\n", single)

	block, err := timePerRow(ctx, *nrows, func() { e.PredictBlock(X, out) })
	if err != nil {
		return err
	}
	allocs := allocsPerRun(func() { e.PredictBlock(X, out) })
	fmt.Fprintf(stdout, "block predict: %.1f ns/row, %.0f rows/s, %.4f allocs/row\n", block, 1e9/block, allocs/float64(*nrows))

	// Contributions cost far more per row; a bounded sample keeps the run short.
	nc := min(*nrows, 2000)
	contrib := make([]float64, k*(nf+1))
	contribNs, err := timePerRow(ctx, nc, func() {
		for r := range nc {
			e.Contributions(X[r*nf:(r+1)*nf], contrib)
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "contributions: %.1f ns/row\n", contribNs)

	if m.folder != nil {
		var headErr error
		headNs, err := timePerRow(ctx, nc, func() { _, headErr = m.folder.PredictFeatures(X[:nc*nf]) })
		if err := errors.Join(err, headErr); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "head (%s, with factors): %.1f ns/row\n", m.folder.Task(), headNs)
	}
	fmt.Fprintf(stdout, "rows_per_sec=%.1f single_row_ns=%.1f contrib_row_ns=%.1f\n", 1e9/block, single, contribNs)
	return nil
}

// syntheticRows draws n rows of nf standard-normal values, 10% of them
// missing, from a fixed seed.
func syntheticRows(n, nf int) []float32 {
	rng := rand.New(rand.NewPCG(21, 2))
	X := make([]float32, n*nf)
	for i := range X {
		X[i] = float32(rng.NormFloat64())
		if rng.IntN(10) == 0 {
			X[i] = float32(math.NaN())
		}
	}
	return X
}

// timePerRow runs pass (which handles rows rows) once to warm up, then
// repeatedly for at least a second, and returns nanoseconds per row.
func timePerRow(ctx context.Context, rows int, pass func()) (float64, error) {
	pass()
	start := time.Now()
	passes := 0
	for passes == 0 || time.Since(start) < time.Second {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		pass()
		passes++
	}
	return float64(time.Since(start).Nanoseconds()) / float64(passes*rows), nil
}

// allocsPerRun counts heap allocations of one call of f.
func allocsPerRun(f func()) float64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs - before.Mallocs)
}
