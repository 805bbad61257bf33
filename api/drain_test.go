package api

import (
	"bytes"
	"io"
	"net/http"
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

// What the drain costs a body read to its end, the normal path: "bare" is
// the handler alone, "drained" the same behind drainBody. The context has
// no ResponseWriter, so a flush or a deadline on that path would panic:
// all it adds is the body wrapper and the shallow copy of the request.
func BenchmarkDrainBodyReadToEnd(b *testing.B) {
	s := &Server{cfg: Config{}.WithDefaults()}
	body := []byte(`{"inputs": {"company_size": 250, "engagement_score": 82, "industry": "Technology"}}`)
	read := func(c echo.Context) error { // as readJSON reads
		_, err := io.ReadAll(io.LimitReader(c.Request().Body, 1<<20))
		return err
	}
	for _, bc := range []struct {
		name string
		h    echo.HandlerFunc
	}{{"bare", read}, {"drained", s.drainBody(read)}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			rd := bytes.NewReader(body)
			req := httptest.NewRequest(http.MethodPost, "/api/v1/models/21/predict", nil)
			req.Body, req.ContentLength = io.NopCloser(rd), int64(len(body))
			c := echo.New().NewContext(req, nil)
			for b.Loop() {
				rd.Reset(body)
				c.SetRequest(req)
				if err := bc.h(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
