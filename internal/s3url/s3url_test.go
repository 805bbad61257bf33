package s3url

import "testing"

func TestParse(t *testing.T) {
	for raw, ok := range map[string]bool{
		"s3://leads/a.csv": true, "s3://my.bucket-1/dir/a.csv.gz": true,
		"s3://leads": false, "s3://leads/": false, "s3://leads/dir/": false, "https://leads/a.csv": false,
		"s3://Leads/a.csv": false, "s3://le/a.csv": false, "s3://-leads/a.csv": false,
		"s3://leads/../a.csv": false, "s3://leads/a/./b": false, "s3://leads/a\nb": false,
	} {
		if _, err := Parse(raw); (err == nil) != ok {
			t.Errorf("Parse(%q): %v, want ok=%t", raw, err, ok)
		}
	}
}

// A prefix covers the keys under it as a folder, in its bucket alone.
func TestAllows(t *testing.T) {
	l, err := ParseAllow(" s3://leads/exports , s3://scores")
	if err != nil {
		t.Fatal(err)
	}
	for raw, want := range map[string]bool{
		"s3://leads/exports/a.csv": true, "s3://leads/exports/2026/a.csv": true, "s3://scores/x/y.csv": true,
		"s3://leads/exports-old/a.csv": false, "s3://leads/a.csv": false, "s3://other/exports/a.csv": false,
	} {
		u, err := Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Allows(u); got != want {
			t.Errorf("Allows(%s) = %t", raw, got)
		}
	}
	if _, err := ParseAllow("s3://leads,ftp://x"); err == nil {
		t.Error("a bad entry was accepted")
	}
}
