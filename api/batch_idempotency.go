// Idempotency-Key handling for batch submissions.

package api

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"io"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// idemRecord is what an Idempotency-Key maps to.
type idemRecord struct {
	BatchID string `json:"batch_id"`
	Hash    string `json:"hash"`
}

func (s *Server) priorBatch(c echo.Context, key string) (*idemRecord, error) {
	b, err := s.rdb.Get(c.Request().Context(), jobs.BatchIdemKey(tenantOf(c), key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, s.unavailable(c, err)
	}
	var r idemRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, nil
	}
	return &r, nil
}

// replayBatch answers a resubmission: the same batch when the body is the
// same, 409 when the key was used for another body.
func (s *Server) replayBatch(c echo.Context, prior *idemRecord, body *limitedBody, h hash.Hash) error {
	if _, err := io.Copy(io.Discard, body); err != nil {
		if body.over {
			return tooLarge(s.cfg.Batch)
		}
		return errorf(CodeBadRequest, "The body could not be read.")
	}
	if hex.EncodeToString(h.Sum(nil)) != prior.Hash {
		return errorf(CodeConflict, "This Idempotency-Key was used for a different batch (%s); use a new key for a new file.", prior.BatchID)
	}
	fields, err := s.rdb.HGetAll(c.Request().Context(), jobs.BatchKey(prior.BatchID)).Result()
	if err != nil {
		return s.unavailable(c, err)
	}
	rec, _ := jobs.DecodeBatchRecord(fields)
	return acceptBatch(c, prior.BatchID, rec.ModelID, rec.Rows, rec.Warnings)
}

// claimIdempotency binds key to the new batch; when a concurrent request
// with the same key won, it answers with that batch instead (or 409).
func (s *Server) claimIdempotency(c echo.Context, key string, u *batchUpload, sum string) error {
	ctx := c.Request().Context()
	b, _ := json.Marshal(idemRecord{BatchID: u.id, Hash: sum})
	ok, err := s.rdb.SetNX(ctx, jobs.BatchIdemKey(tenantOf(c), key), b, s.cfg.RetentionBatch).Result()
	if err != nil {
		return s.unavailable(c, err)
	}
	if ok {
		return nil
	}
	prior, err := s.priorBatch(c, key)
	if err != nil || prior == nil {
		return errorf(CodeConflict, "A batch with this Idempotency-Key is being submitted; retry in a moment.")
	}
	if prior.Hash != sum {
		return errorf(CodeConflict, "This Idempotency-Key was used for a different batch (%s); use a new key for a new file.", prior.BatchID)
	}
	u.abandon()
	u.id = prior.BatchID
	return nil
}
