package api

import (
	"bytes"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

func TestDrainConfig(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.DrainMaxBytes != 64<<20 || c.DrainTimeout != 10*time.Second {
		t.Fatalf("default drain bounds %d bytes, %v; want 64 MiB, 10s", c.DrainMaxBytes, c.DrainTimeout)
	}
	for _, bad := range []Config{{DrainMaxBytes: -1}, {DrainTimeout: -time.Second}} {
		if _, err := NewServer(bad, nil, nil); err == nil || !strings.Contains(err.Error(), "drain bounds") {
			t.Errorf("%+v accepted: %v", bad, err)
		}
	}
}

func TestBodyConfig(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.BodyTimeout != 30*time.Second || c.Batch.MinUploadRate != 64<<10 || c.GzipMaxRatio != 200 {
		t.Fatalf("default body timeout %v, upload rate %d, gzip ratio %d; want 30s, 64 KiB/s, 200",
			c.BodyTimeout, c.Batch.MinUploadRate, c.GzipMaxRatio)
	}
	for _, bad := range []Config{{BodyTimeout: -time.Second}, {Batch: BatchConfig{MinUploadRate: -1}}, {GzipMaxRatio: -1}} {
		if _, err := NewServer(bad, nil, nil); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// What the guard costs a body read to its end, the normal path: "bare" is
// the handler alone, "guarded" the same behind guardBody, both behind a real
// listener so the deadline and full-duplex calls reach a connection. The
// difference in allocations is exact; the time is mostly the round trip.
func BenchmarkGuardBodyReadToEnd(b *testing.B) {
	s := &Server{cfg: Config{}.WithDefaults()}
	body := []byte(`{"inputs": {"company_size": 250, "engagement_score": 82, "industry": "Technology"}}`)
	read := func(c echo.Context) error { // as readJSON reads
		_, err := io.ReadAll(io.LimitReader(c.Request().Body, 1<<20))
		return err
	}
	for _, bc := range []struct {
		name string
		h    echo.HandlerFunc
	}{{"bare", read}, {"guarded", s.guardBody(read)}} {
		b.Run(bc.name, func(b *testing.B) {
			e := echo.New()
			e.POST("/", bc.h)
			hs := httptest.NewServer(e)
			defer hs.Close()
			b.ReportAllocs()
			for b.Loop() {
				resp, err := hs.Client().Post(hs.URL, "application/json", bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
