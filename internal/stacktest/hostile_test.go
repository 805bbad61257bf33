package stacktest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// wideObject is a JSON object of short keys the model does not take, as
// many as fit in size bytes.
func wideObject(size int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; ; i++ {
		field := fmt.Sprintf(`"k%d":1`, i)
		if b.Len()+len(field)+2 > size {
			break
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(field)
	}
	return b.String() + "}"
}

// TestHostileInputsStaySmall sends the inputs a black-box probe amplified
// (issue 14): answers and stored results stay under fixed bounds whatever
// the input's size, where a 1 MiB body once answered a 31.7 MB 422 and a
// 4 MiB batch stored 197 MB of row errors.
func TestHostileInputsStaySmall(t *testing.T) {
	s := startStack(t, stackOptions{})
	wide := wideObject(1<<20 - len(`{"inputs": }`)) // the widest row under the body limit
	oddRow := `{"engagement_score": 1, "industry": "Mining", "a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}`
	badRow := `{"engagement_score": "x", "company_size": "y", "demo_requested": "z", "industry": 7, "title": 8}`
	list := func(row string) string { return "[" + strings.TrimSuffix(strings.Repeat(row+",", 100), ",") + "]" }
	for _, tc := range []struct {
		name, body string
		code       int
		most       int // bytes the answer may take
	}{
		{"a row too wide", `{"inputs": ` + wide + `}`, http.StatusUnprocessableEntity, 1 << 10},
		{"100 rows of warnings", `{"inputs": ` + list(oddRow) + `}`, http.StatusOK, 64 << 10},
		{"100 rows of errors", `{"inputs": ` + list(badRow) + `}`, http.StatusUnprocessableEntity, 16 << 10},
		{"100 rows of strict errors", `{"inputs": ` + list(oddRow) + `, "options": {"strict": true}}`, http.StatusUnprocessableEntity, 16 << 10},
	} {
		r := s.do("POST", "/api/v1/models/21/predict", []byte(tc.body), nil)
		if r.code != tc.code || len(r.body) > tc.most {
			t.Errorf("%s: %d answer of %d bytes to %d bytes sent; want %d in at most %d", tc.name, r.code, len(r.body), len(tc.body), tc.code, tc.most)
		}
	}

	// The batch: four rows too wide (each near the 1 MiB row limit), four
	// with many warnings, four with many errors. Its stored results stay
	// within a few KiB a row.
	var in bytes.Buffer
	rowLimit := wideObject(1<<20 - 1) // the widest row under the row limit
	for range 4 {
		in.WriteString(rowLimit + "\n" + strings.Replace(wideObject(5000), "{", `{"engagement_score": 1, `, 1) + "\n" + badRow + "\n")
	}
	id := s.acceptedBatch(s.submitBatch(in.Bytes(), "application/x-ndjson", "", nil))
	b := s.waitBatch(id, 60*time.Second)
	if b.RowsFailed != 8 || b.RowsDone != 12 || b.RowsWarned != 4 {
		t.Fatalf("status %+v; want 8 rows failed and 4 scored with warnings", b)
	}
	keys, err := s.rdb.Keys(context.Background(), jobs.BatchKey(id)+":out:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("no stored results (%v)", err)
	}
	stored := int64(0)
	for _, k := range keys {
		stored += s.rdb.StrLen(context.Background(), k).Val()
	}
	if stored > 12*2<<10 {
		t.Errorf("%d bytes of results stored for 12 rows (%d bytes in); want at most 2 KiB a row", stored, in.Len())
	}
	var row struct {
		Error *struct {
			Code   string
			Errors []jobs.FieldError
		}
	}
	first, _, _ := bytes.Cut(s.results(id, "jsonl"), []byte("\n"))
	if err := json.Unmarshal(first, &row); err != nil || row.Error == nil || len(row.Error.Errors) != 1 ||
		row.Error.Errors[0].Code != jobs.CodeTooManyFields {
		t.Errorf("the wide row's result: %s", first)
	}
}

// TestHostileBodiesKeepMemoryBounded: eight tenants at once sending 1 MiB
// predicts of a hundred thousand keys each, four times over, do not grow the
// heap of the API and the worker (one process here) by more than 96 MiB:
// rows too wide are refused before they are decoded into maps of tens of
// megabytes each (jobs.CheckWidth; without it the heap grew 154 MiB).
func TestHostileBodiesKeepMemoryBounded(t *testing.T) {
	s := startStack(t, stackOptions{})
	body := []byte(`{"inputs": ` + wideObject(1<<20-len(`{"inputs": }`)) + `}`)
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	peak := base.HeapInuse
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapInuse)
			}
		}
	}()
	for range 4 {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if r := s.do("POST", "/api/v1/models/21/predict", body, nil); r.code != http.StatusUnprocessableEntity {
					t.Errorf("answered %d: %.200s", r.code, r.body)
				}
			})
		}
		wg.Wait()
	}
	close(stop)
	<-sampled
	grew := int64(peak) - int64(base.HeapInuse)
	t.Logf("heap grew by %d MiB", grew>>20)
	if grew > 96<<20 {
		t.Errorf("the heap grew by %d MiB under 8 concurrent hostile predicts; want at most 96", grew>>20)
	}
}

// A body too wide to decode is refused once its first object passes the
// bound, without the rest being read: a client that sent 64 KiB of a
// declared megabyte of short keys, then nothing more, is answered 422 with
// Connection: close. The whole megabyte used to be read (and scanned)
// first, so a tenant's stream of such bodies cost the API's shared CPU a
// megabyte each.
func TestWideBodyRefusedBeforeItIsRead(t *testing.T) {
	s := startStack(t, stackOptions{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := fmt.Sprintf("POST /api/v1/models/21/predict HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", s.key, 1<<20)
	part := `{"inputs": ` + wideObject(64<<10)
	if _, err := conn.Write([]byte(head + part[:len(part)-1])); err != nil { // the object stays open
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer while the body was incomplete: %v", err)
	}
	defer resp.Body.Close()
	var e struct {
		Code   string            `json:"code"`
		Errors []jobs.FieldError `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusUnprocessableEntity || e.Code != "invalid_input" || len(e.Errors) != 1 ||
		e.Errors[0].Code != jobs.CodeTooManyFields || !resp.Close {
		t.Fatalf("answer %d close=%v %+v, want 422 invalid_input (too_many_fields) and Connection: close", resp.StatusCode, resp.Close, e)
	}
}
