// Storing an upload's rows as chunks (internal/batchchunk) within the
// batch's limits.

package api

import (
	"context"
	"errors"
	"time"
)

// add appends one record to the batch, within its row limit.
func (u *batchUpload) add(rec []byte) error {
	if u.cw.Rows() >= u.s.cfg.Batch.MaxRows {
		return errorf(CodeTooLarge, "The batch is over the %d-row limit; split the file.", u.s.cfg.Batch.MaxRows)
	}
	if err := u.cw.Add(u.ctx, rec); err != nil {
		return u.chunkErr(err)
	}
	u.pace.StepN(1 + len(rec)/paceUnit)
	return nil
}

// paceUnit is the bytes of a record counted as one unit of work in pacing
// an upload: about an ordinary lead row's. A megabyte row counts as 2,048
// of them, so a file of such rows steps aside as often as one of the same
// bytes in ordinary rows.
const paceUnit = 512

// finish records the totals, then stores the last chunk.
func (u *batchUpload) finish() error { return u.chunkErr(u.cw.Finish(u.ctx)) }

// chunkErr is the answer to a chunk not stored: the quota's refusal as it
// is, else Redis's failure.
func (u *batchUpload) chunkErr(err error) error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	return u.redisErr(err)
}

// abandon removes a batch whose upload failed; its queued chunks find the
// record gone and do nothing.
func (u *batchUpload) abandon() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := u.s.rdb.Unlink(ctx, u.cw.Keys()...).Err(); err != nil {
		u.s.log.Warn("abandoned batch not removed", "batch_id", u.id, "err", err.Error())
	}
}
