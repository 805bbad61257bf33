package batchfile

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A stream's end: Tally counts the rows and the failed rows as they are
// written, a JSONL stream ends with the marker line (no "row" key), and a
// CSV ends with its last record, nothing after it.
func TestRenderEnd(t *testing.T) {
	w := NewResultWriter([]Column{{"lead_score", ColInt}}, 0)
	w.OK(0, "a")
	w.Int(87)
	w.Fail(1, "b", &RowError{Code: "invalid_input", Detail: "company_size is required"})
	w.OK(2, "c")
	w.Int(3)
	for _, tc := range []struct {
		name string
		r    Renderer
		want string
	}{
		{"csv", &CSVRenderer{}, "row,id,lead_score,error_code,error_detail\n0,a,87,,\n1,b,,invalid_input,company_size is required\n2,c,3,,\n"},
		{"jsonl", &JSONLRenderer{}, `{"row":0,"id":"a","lead_score":87}` + "\n" +
			`{"row":1,"id":"b","error":{"code":"invalid_input","detail":"company_size is required"}}` + "\n" +
			`{"row":2,"id":"c","lead_score":3}` + "\n" +
			`{"end":true,"rows":3,"status":"partially_failed"}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			bw := bufio.NewWriter(&out)
			tally := &Tally{Renderer: tc.r}
			if err := RenderChunk(bw, tally, w.Bytes(), true, nil); err != nil {
				t.Fatal(err)
			}
			if tally.Rows != 3 || tally.Failed != 1 {
				t.Errorf("tally %d rows, %d failed; want 3, 1", tally.Rows, tally.Failed)
			}
			if err := tally.End(bw, tally.Rows, "partially_failed"); err != nil {
				t.Fatal(err)
			}
			bw.Flush()
			if diff := cmp.Diff(tc.want, out.String()); diff != "" {
				t.Errorf("stream (-want +got):\n%s", diff)
			}
		})
	}
}

// An errors file holds the failed rows alone, with their reasons and no
// result columns.
func TestFailedOnly(t *testing.T) {
	cols := []Column{{Name: "lead_score", Type: ColInt}}
	rw := NewResultWriter(cols, 0)
	rw.OK(0, "a")
	rw.Int(80)
	rw.Fail(1, "b", &RowError{Code: "invalid_input", Detail: "bad, very"})
	rw.OK(2, "c")
	rw.Int(10)
	for _, tc := range []struct {
		name string
		r    Renderer
		want string
	}{
		{"csv", &CSVRenderer{}, "row,id,error_code,error_detail\n1,b,invalid_input,\"bad, very\"\n"},
		{"jsonl", &JSONLRenderer{}, `{"row":1,"id":"b","error":{"code":"invalid_input","detail":"bad, very"}}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := bufio.NewWriter(&buf)
			if err := RenderChunk(w, FailedOnly{tc.r}, rw.Bytes(), true, nil); err != nil {
				t.Fatal(err)
			}
			_ = w.Flush()
			if buf.String() != tc.want {
				t.Errorf("got %q, want %q", buf.String(), tc.want)
			}
		})
	}
}
