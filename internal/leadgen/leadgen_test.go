package leadgen

import (
	"bytes"
	"encoding/csv"
	"testing"
)

func TestWriteCSV(t *testing.T) {
	var a, b bytes.Buffer
	if err := WriteCSV(&a, 2000, 7, map[int]bool{3: true}); err != nil {
		t.Fatal(err)
	}
	_ = WriteCSV(&b, 2000, 7, map[int]bool{3: true})
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("the same seed wrote different files")
	}
	recs, err := csv.NewReader(&a).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2001 || len(recs[0]) != 11 || recs[4][1] != "-5" || recs[5][0] != "L4" {
		t.Fatalf("%d records, first %v, bad %v", len(recs), recs[0], recs[4])
	}
	if avg := float64(b.Len()) / 2000; avg < 55 || avg > 85 {
		t.Errorf("%.0f bytes a lead; the benchmark assumes about 71", avg)
	}
}
