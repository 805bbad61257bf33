// GET /api/v1/batches/:id/results: streaming a batch's results in input order.

package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hokusai-ai/inference-queue/internal/batchfile"
	"github.com/hokusai-ai/inference-queue/internal/pace"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// resultsWindow is how many chunk results are fetched per round trip while
// streaming results.
const resultsWindow = 8

// resultsPoll is how often a waiting results stream checks for its next chunk.
const resultsPoll = 20 * time.Millisecond

// The trailers of a results stream that ended cleanly: how many rows it
// holds and the batch's status. A stream that fails has none: it is broken
// off (abortResults), so a download cut short never looks complete.
const (
	trailerRows   = "X-Hokusai-Rows"
	trailerStatus = "X-Hokusai-Status"
)

// codeResultsAborted marks a results stream broken off after its header in
// the access log and in hokusai_http_rejected_total: it has no JSON answer
// to carry a code.
const codeResultsAborted = "results_aborted"

// errRedis marks a results stream that could not reach Redis: before the
// header goes out it answers 503, which a retry may get past.
var errRedis = errors.New("redis unreachable")

// errCanceled is what a wait=true stream finds at the first chunk its
// batch's cancel dropped: a clean end, marked as canceled, not a failure.
var errCanceled = errors.New("batch canceled")

// getBatchResults answers GET /api/v1/batches/:id/results?format=csv|jsonl,
// streaming the chunks' results in input order. With wait=true it starts
// while the batch runs and writes each chunk as soon as it and those before
// it are done, so the download overlaps the scoring.
//
// The header goes out with the first 256 KiB of rows, or sooner when a
// wait=true stream sends its rows so far to wait for the next chunk; a
// failure before then still answers with a JSON error. After it, the stream
// either ends with its trailers (and, in JSONL, the end marker) or is broken
// off.
func (s *Server) getBatchResults() echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := s.batch(c)
		if err != nil {
			return err
		}
		if b.OutputURL != "" {
			return &Error{Code: CodeConflict, Detail: fmt.Sprintf("Batch %s writes its results to %s, not to this API.", b.BatchID, b.OutputURL),
				Extra: map[string]any{"status": b.Status, "output_url": b.OutputURL}}
		}
		wait := c.QueryParam("wait") == "true"
		switch b.Status {
		case jobs.BatchSucceeded, jobs.BatchPartiallyFailed, jobs.BatchFailed:
		case jobs.BatchQueued, jobs.BatchRunning:
			if wait {
				break
			}
			fallthrough
		default:
			return &Error{Code: CodeConflict, Detail: fmt.Sprintf("Batch %s is %s; results are ready once it finishes (or stream them with wait=true).", b.BatchID, b.Status),
				Extra: map[string]any{"status": b.Status}}
		}
		format := c.QueryParam("format")
		if format == "" {
			format = b.Format
		}
		var r batchfile.Renderer
		res := c.Response()
		switch format {
		case "csv":
			r = &batchfile.CSVRenderer{}
			res.Header().Set(echo.HeaderContentType, "text/csv; charset=utf-8")
		case "jsonl":
			r = &batchfile.JSONLRenderer{}
			res.Header().Set(echo.HeaderContentType, mediaNDJ)
		default:
			return errorf(CodeBadRequest, "format must be csv or jsonl, not %q.", format)
		}
		// Declared only on a 200: an error answer has a length and no trailers.
		res.Before(func() {
			if res.Status == http.StatusOK {
				res.Header().Set("Trailer", trailerRows+", "+trailerStatus)
			}
		})
		st := &resultsStream{s: s, ctx: c.Request().Context(), b: b, wait: wait, rows: &batchfile.Tally{Renderer: r},
			res: res, w: bufio.NewWriterSize(res, 256<<10), pace: s.batchPacer()}
		status, err := st.run()
		if err == nil {
			err = st.end(status)
		}
		if err != nil {
			return s.resultsFailed(c, st, err)
		}
		res.Header().Set(trailerRows, strconv.Itoa(st.rows.Rows))
		res.Header().Set(trailerStatus, status)
		return nil
	}
}

// resultsStream is one batch's results being written.
type resultsStream struct {
	s    *Server
	ctx  context.Context
	b    *batchResponse
	wait bool
	rows *batchfile.Tally // the rows written so far
	res  *echo.Response
	w    *bufio.Writer
	pace *pace.Pacer
}

// run writes the rows, chunk after chunk, and returns the batch's status
// once all are written: succeeded, partially_failed or failed by the rows'
// own failures, the counts the batch status is derived from. A wait=true
// stream that meets a chunk its batch's cancel dropped stops there, canceled.
func (st *resultsStream) run() (string, error) {
	id, total := st.b.BatchID, st.b.ChunksTotal
	keys := make([]string, 0, resultsWindow)
	for n := 0; n < total; {
		keys = keys[:0]
		for k := n; k < min(n+resultsWindow, total); k++ {
			keys = append(keys, jobs.BatchOutKey(id, k))
		}
		blobs, err := st.s.rdb.MGet(st.ctx, keys...).Result()
		if err != nil {
			return "", fmt.Errorf("%w: read the results of chunks %d-%d: %w", errRedis, n, n+len(keys)-1, err)
		}
		missing := false
		for _, v := range blobs {
			blob, ok := v.(string)
			if missing = !ok; missing {
				break
			}
			if err := batchfile.RenderChunk(st.w, st.rows, []byte(blob), n == 0, st.pace); err != nil {
				return "", fmt.Errorf("render chunk %d: %w", n, err)
			}
			n++
		}
		if !missing {
			continue
		}
		if !st.wait {
			return "", fmt.Errorf("the results of chunk %d are gone", n)
		}
		if err := st.send(); err != nil {
			return "", err
		}
		if err := st.s.awaitChunk(st.ctx, id, n); errors.Is(err, errCanceled) {
			return jobs.BatchCanceled, nil
		} else if err != nil {
			return "", err
		}
	}
	switch st.rows.Failed {
	case 0:
		return jobs.BatchSucceeded, nil
	case st.rows.Rows:
		return jobs.BatchFailed, nil
	}
	return jobs.BatchPartiallyFailed, nil
}

// end checks that the stream holds every row of its batch (but those a
// cancel dropped), then writes the end marker and sends what is buffered.
func (st *resultsStream) end(status string) error {
	if status != jobs.BatchCanceled && st.rows.Rows != st.b.RowsTotal {
		return fmt.Errorf("the chunks hold %d rows of the batch's %d", st.rows.Rows, st.b.RowsTotal)
	}
	if err := st.rows.End(st.w, st.rows.Rows, status); err != nil {
		return fmt.Errorf("send the end: %w", err)
	}
	if !st.res.Committed {
		// A CSV canceled before its first row has no byte to carry the
		// header (and its Trailer declaration) out.
		st.res.WriteHeader(http.StatusOK)
	}
	return st.send()
}

// send pushes the rows written so far through every buffer to the client:
// a wait=true stream does before it waits for the next chunk, so what is
// scored is there to read meanwhile. With no row yet there is nothing to
// push: flushing would send the header past Echo, without its Trailer
// declaration, and end the chance of a JSON error.
func (st *resultsStream) send() error {
	if err := st.w.Flush(); err != nil {
		return fmt.Errorf("send rows: %w", err)
	}
	if !st.res.Committed {
		return nil
	}
	if err := http.NewResponseController(st.res).Flush(); err != nil {
		return fmt.Errorf("send rows: %w", err)
	}
	return nil
}

// resultsFailed ends a results stream that failed with cause, logging it
// once. Before the header went out the client gets a JSON error; after, the
// response is broken off (abortResults). A client that left is logged at
// info level and not answered: there is nothing to fix on our side.
func (s *Server) resultsFailed(c echo.Context, st *resultsStream, cause error) error {
	res := c.Response()
	gone := st.ctx.Err() != nil
	if !res.Committed && !gone && errors.Is(cause, errRedis) {
		return s.unavailable(c, cause)
	}
	level := slog.LevelWarn
	if gone {
		level = slog.LevelInfo
	}
	s.log.Log(st.ctx, level, "batch results cut short", "request_id", requestID(c), "batch_id", st.b.BatchID,
		"rows_written", st.rows.Rows, "header_sent", res.Committed, "err", cause.Error())
	switch {
	case res.Committed:
		s.rejected(c, codeResultsAborted)
		abortResults(res)
	case !gone:
		return errorf(CodeInternal, "The batch's results could not be read; the request id identifies the failure in our logs.")
	}
	return nil
}

// abortResults breaks off a response whose header is out, so the client
// sees a failed transfer, not a short file that ends cleanly: over HTTP/1.1
// the connection is closed before the last, empty chunk (curl exits 18, Go's
// client reads io.ErrUnexpectedEOF, Python's requests raises
// ChunkedEncodingError). Taking the connection, rather than panicking, lets
// the access log and the metrics see the request. Where the connection
// cannot be taken (HTTP/2, when the handler is embedded behind TLS), the
// panic makes net/http reset the stream instead.
func abortResults(res *echo.Response) {
	conn, _, err := http.NewResponseController(res).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// awaitChunk waits until chunk n's results are stored. It returns
// errCanceled when the batch was canceled, and an error when the batch is
// gone, Redis cannot be reached or the caller left.
func (s *Server) awaitChunk(ctx context.Context, id string, n int) error {
	for {
		pl := s.rdb.Pipeline()
		out := pl.Exists(ctx, jobs.BatchOutKey(id, n))
		canceled := pl.HExists(ctx, jobs.BatchKey(id), jobs.BatchFieldCanceled)
		live := pl.Exists(ctx, jobs.BatchKey(id))
		if _, err := pl.Exec(ctx); err != nil {
			return fmt.Errorf("%w: wait for chunk %d: %w", errRedis, n, err)
		}
		switch {
		case out.Val() == 1:
			return nil
		case canceled.Val():
			return errCanceled
		case live.Val() == 0:
			return fmt.Errorf("the batch expired before chunk %d was scored", n)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for chunk %d: %w", n, ctx.Err())
		case <-time.After(resultsPoll):
		}
	}
}
