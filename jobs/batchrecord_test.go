package jobs

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestDecodeBatchRecord(t *testing.T) {
	if _, ok := DecodeBatchRecord(nil); ok {
		t.Error("no fields decoded as a record")
	}
	got, ok := DecodeBatchRecord(map[string]string{
		BatchFieldTenant: "acme", BatchFieldModel: "21", BatchFieldPool: "default", BatchFieldFormat: BatchCSV,
		BatchFieldHeader: `["lead_id","industry"]`, BatchFieldChunkRows: "1000", BatchFieldWindow: "4",
		BatchFieldExplain: "1", BatchFieldCallback: "https://example.com/h", BatchFieldCreated: "1764547200000",
		BatchFieldWarnings: `[{"field":"x","code":"unknown_field","detail":"d"}]`,
		BatchFieldRows:     "2500", BatchFieldChunks: "3", BatchFieldStarted: "1764547201000",
		BatchFieldOK: "2400", BatchFieldFailed: "100", BatchFieldWarned: "7", BatchFieldFinisher: "2",
	})
	created := time.UnixMilli(1764547200000).UTC()
	want := BatchRecord{Tenant: "acme", ModelID: "21", Pool: "default", Format: BatchCSV, CallbackURL: "https://example.com/h",
		ChunkRows: 1000, Window: 4, Explain: true, Created: created,
		Warnings: []Warning{{Field: "x", Code: CodeUnknownField, Detail: "d"}},
		Stored:   true, Rows: 2500, Chunks: 3, Started: created.Add(time.Second), OK: 2400, Failed: 100, Warned: 7, Finisher: "2"}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(BatchRecord{})); !ok || diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	if h, err := got.CSVHeader(); err != nil || !cmp.Equal(h, []string{"lead_id", "industry"}) {
		t.Errorf("header %v, %v", h, err)
	}
	if m := got.Mode(); m.Strict || !m.AsOf.Equal(created) {
		t.Errorf("mode %+v, want lax as of the submission", m)
	}
	if _, err := (BatchRecord{}).CSVHeader(); err == nil {
		t.Error("a record without a header gave one")
	}
}

func TestBatchRecordStatus(t *testing.T) {
	at := time.UnixMilli(1)
	for _, tc := range []struct {
		name string
		rec  BatchRecord
		done int
		want string
	}{
		{"just created", BatchRecord{}, 0, BatchQueued},
		{"upload still going, chunk 0 done", BatchRecord{Started: at, OK: 10}, 1, BatchRunning},
		{"stored, one of three done", BatchRecord{Stored: true, Chunks: 3, Started: at}, 1, BatchRunning},
		{"all done, none failed", BatchRecord{Stored: true, Chunks: 3, Started: at, OK: 30}, 3, BatchSucceeded},
		{"all done, all failed", BatchRecord{Stored: true, Chunks: 3, Started: at, Failed: 30}, 3, BatchFailed},
		{"all done, some failed", BatchRecord{Stored: true, Chunks: 3, Started: at, OK: 29, Failed: 1}, 3, BatchPartiallyFailed},
		{"an empty upload", BatchRecord{Stored: true}, 0, BatchSucceeded},
		{"canceled wins", BatchRecord{Stored: true, Chunks: 3, OK: 30, Canceled: at}, 3, BatchCanceled},
	} {
		if got := tc.rec.Status(tc.done); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
