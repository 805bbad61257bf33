package batchfile

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hokusai-ai/inference-queue/jobs"
)

func readAll(t testing.TB, r *Reader) ([]string, error) {
	t.Helper()
	var out []string
	for range 100_000 {
		rec, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, string(rec))
	}
	t.Fatal("reader never ended")
	return nil, nil
}

func TestCSVReader(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"plain", "a,b\n1,2\n", []string{"a,b", "1,2"}},
		{"no final newline", "a,b\n1,2", []string{"a,b", "1,2"}},
		{"crlf", "a,b\r\n1,2\r\n", []string{"a,b", "1,2"}},
		{"blank lines", "\n\na,b\n\r\n\n1,2\n\n", []string{"a,b", "1,2"}},
		{"quoted newline", "a,b\n\"x\r\ny\",2\n3,4\n", []string{"a,b", "\"x\ny\",2", "3,4"}},
		{"escaped quotes", "\"a\"\"b\",\"\"\"\"\n", []string{"\"a\"\"b\",\"\"\"\""}},
		{"trailing cr at eof", "a,b\r", []string{"a,b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(t, NewCSVReader(strings.NewReader(tc.in), 1<<20))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReaderLimit(t *testing.T) {
	in := "a,b\n\"" + strings.Repeat("x\n", 600_000) // an unterminated quote
	_, err := readAll(t, NewCSVReader(strings.NewReader(in), 1<<20))
	if !errors.Is(err, ErrRecordTooLong) {
		t.Fatalf("err = %v, want ErrRecordTooLong", err)
	}
	long := strings.Repeat("y", 2<<20)
	_, err = readAll(t, NewJSONLReader(strings.NewReader("{}\n"+long+"\n"), 1<<20))
	if !errors.Is(err, ErrRecordTooLong) {
		t.Fatalf("err = %v, want ErrRecordTooLong", err)
	}
}

func TestJSONLReader(t *testing.T) {
	in := "{\"a\":1}\r\n  \n{\"b\":\"x\\ny\"}\n\n{}"
	got, err := readAll(t, NewJSONLReader(strings.NewReader(in), 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`{"a":1}`, `{"b":"x\ny"}`, `{}`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}

func TestSplitCSV(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  error
	}{
		{in: "a,b,c", want: []string{"a", "b", "c"}},
		{in: "a,,", want: []string{"a", "", ""}},
		{in: `"a,b",c`, want: []string{"a,b", "c"}},
		{in: `"a""b",""`, want: []string{`a"b`, ""}},
		{in: "\"x\ny\",z", want: []string{"x\ny", "z"}},
		{in: `a"b,c`, err: ErrBareQuote},
		{in: `"ab"c,d`, err: ErrQuote},
		{in: `"ab`, err: ErrQuote},
	} {
		got, err := SplitCSV(tc.in, nil)
		if !errors.Is(err, tc.err) {
			t.Errorf("SplitCSV(%q) err = %v, want %v", tc.in, err, tc.err)
			continue
		}
		if err == nil {
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("SplitCSV(%q) (-want +got):\n%s", tc.in, diff)
			}
		}
	}
}

// FuzzCSV checks the reader and SplitCSV against encoding/csv: whatever
// encoding/csv reads without error, they read the same, record by record.
func FuzzCSV(f *testing.F) {
	for _, s := range []string{
		"a,b\n1,2\n", "\"x\r\ny\",2\r\n", "\"a\"\"b\",\n\n\nc", "a,\"b\nc\"\r", "\"\",\"\"\"\"\n,\n",
		"company_size,industry,id\n250,\"Technology\",\"L-1\"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		cr := csv.NewReader(bytes.NewReader(in))
		cr.FieldsPerRecord = -1
		want, werr := cr.ReadAll()
		r := NewCSVReader(bytes.NewReader(in), 1<<20)
		var got [][]string
		var gerr error
		for range len(in) + 1 {
			rec, err := r.Next()
			if err != nil {
				if err != io.EOF {
					gerr = err
				}
				break
			}
			fields, err := SplitCSV(string(rec), nil)
			if err != nil {
				gerr = err
				break
			}
			got = append(got, fields)
		}
		// A chunk of the records read so far splits back into them.
		var chunk strings.Builder
		var recs []string
		r = NewCSVReader(bytes.NewReader(in), 1<<20)
		for range len(in) + 1 {
			rec, err := r.Next()
			if err != nil {
				break
			}
			recs = append(recs, string(rec))
			chunk.WriteString(string(rec) + "\n")
		}
		var back []string
		for rest := chunk.String(); rest != ""; {
			var rec string
			rec, rest = NextRecord(rest, true)
			back = append(back, rec)
		}
		if diff := cmp.Diff(recs, back); diff != "" && gerr == nil {
			t.Fatalf("NextRecord splits the chunk of %q differently (-reader +NextRecord):\n%s", in, diff)
		}
		if werr != nil {
			return // we may be more or less lenient on broken files
		}
		if gerr != nil {
			t.Fatalf("encoding/csv reads %q but we fail: %v", in, gerr)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("records of %q differ (-encoding/csv +ours):\n%s", in, diff)
		}
	})
}

// FuzzJSONL checks that the reader returns exactly the non-blank lines, and
// that decoding them never panics.
func FuzzJSONL(f *testing.F) {
	for _, s := range []string{"{\"a\":1}\n\n{}\r\n", "{\"id\":7,\"company_size\":3}\n", "[1]\n{\"x\":\"\\u2028\"}", " \r\n\r\n"} {
		f.Add([]byte(s))
	}
	schema := testSchema(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		var want []string
		lines := strings.Split(string(in), "\n")
		for _, l := range lines {
			if l = strings.TrimSuffix(l, "\r"); strings.TrimSpace(l) != "" {
				want = append(want, l)
			}
		}
		got, err := readAll(t, NewJSONLReader(bytes.NewReader(in), 1<<20))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("lines of %q differ (-want +got):\n%s", in, diff)
		}
		d := NewJSONDecoder(schema, lax)
		row := make(jobs.Row, len(schema.Fields))
		for _, l := range got {
			d.JSON([]byte(l), row)
		}
	})
}

// A record of many quoted lines splits in linear time: each line's quotes
// are counted once.
func TestNextRecordLongQuotedRecord(t *testing.T) {
	rec := `"` + strings.Repeat("x\n", 200_000) + `",1`
	got, rest := NextRecord(rec+"\n2\n", true)
	if got != rec || rest != "2\n" {
		t.Fatalf("NextRecord split at %d of %d bytes, rest %q", len(got), len(rec), rest)
	}
}
