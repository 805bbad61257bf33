package api

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
	"github.com/swaggest/swgui/v5/static"
)

// docsAssetsPath is where /docs's Swagger UI files live. The segment after
// it is the files' version, so a browser may keep them for a year and a
// deploy with other files changes their URLs.
const docsAssetsPath = "/docs/assets/"

// swaggerUIFiles are the files of swgui's Swagger UI build that /docs uses,
// and the only ones served: the standalone preset (a top bar that loads any
// URL's spec) and the OAuth2 redirect page are left out on purpose.
var swaggerUIFiles = []string{"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "favicon-16x16.png"}

// assetTypes is the content type of each asset by extension, spelled out
// rather than asked of package mime, which reads the host's tables.
var assetTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".png": "image/png",
}

// docsBoot starts Swagger UI on this API's own document. validatorUrl null
// keeps it from loading a badge from the public validator; the base layout
// has no top bar, so the page cannot be pointed at another spec.
const docsBoot = `window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
  tryItOutEnabled: true,
  validatorUrl: null,
  layout: "BaseLayout"
});`

var docsPage = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hokusai inference API</title>
<link rel="icon" type="image/png" sizes="32x32" href="{{.Assets}}favicon-32x32.png">
<link rel="icon" type="image/png" sizes="16x16" href="{{.Assets}}favicon-16x16.png">
<link rel="stylesheet" href="{{.Assets}}swagger-ui.css">
</head><body>
<noscript>This reference needs JavaScript. The same content is at <a href="/openapi.json">/openapi.json</a>.</noscript>
<div id="swagger-ui"></div>
<script src="{{.Assets}}swagger-ui-bundle.js"></script>
<script>{{.Boot}}</script>
</body></html>
`))

// docsAsset is one file as embedded: gzipped when its name in static.FS
// ends in .gz.
type docsAsset struct {
	body        []byte
	gzipped     bool
	contentType string
}

// swaggerUI holds what /docs serves, built once from the embedded files.
type swaggerUI struct {
	version string
	assets  map[string]docsAsset
	page    []byte
	// csp lets the page run only its own scripts (the bundle and the boot
	// script, by hash) and talk only to this origin: partners paste keys
	// into it.
	csp string
}

// loadSwaggerUI is built on first use and shared: the files are in the
// binary and never change while it runs.
var loadSwaggerUI = sync.OnceValue(func() *swaggerUI {
	ui, err := newSwaggerUI()
	if err != nil {
		panic(err) // the dependency lost a file: caught by any test of /docs
	}
	return ui
})

func newSwaggerUI() (*swaggerUI, error) {
	ui := &swaggerUI{assets: map[string]docsAsset{}}
	sum := sha256.New()
	for _, name := range swaggerUIFiles {
		a := docsAsset{contentType: assetTypes[path.Ext(name)]}
		var err error
		if a.body, err = fs.ReadFile(static.FS, name+".gz"); err == nil {
			a.gzipped = true
		} else if a.body, err = fs.ReadFile(static.FS, name); err != nil {
			return nil, fmt.Errorf("swagger UI file %s: %w", name, err)
		}
		ui.assets[name] = a
		fmt.Fprintf(sum, "%s\x00%d\x00", name, len(a.body))
		sum.Write(a.body)
	}
	ui.version = hex.EncodeToString(sum.Sum(nil))[:12]
	var page bytes.Buffer
	if err := docsPage.Execute(&page, struct {
		Assets string
		Boot   template.JS
	}{docsAssetsPath + ui.version + "/", template.JS(docsBoot)}); err != nil {
		return nil, fmt.Errorf("render /docs: %w", err)
	}
	ui.page = page.Bytes()
	boot := sha256.Sum256([]byte(docsBoot))
	ui.csp = "default-src 'self'; script-src 'self' 'sha256-" + base64.StdEncoding.EncodeToString(boot[:]) + "'; " +
		"style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
	return ui, nil
}

// docs serves /docs: Swagger UI on /openapi.json, so a partner can paste a
// key and try a call, with every file from this API (no CDN: it works where
// partners' browsers reach only us). The page itself is not cached, so a
// deploy's new asset version is picked up at once.
func (s *Server) docs() echo.HandlerFunc {
	ui := loadSwaggerUI()
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", ui.csp)
		h.Set("Cache-Control", "no-cache")
		return c.HTMLBlob(http.StatusOK, ui.page)
	}
}

// docsAssets serves /docs/assets/VERSION/NAME. A VERSION other than the
// current one still gets the current file, uncached: during a rolling
// deploy a page from one task asks another for its assets.
func (s *Server) docsAssets() echo.HandlerFunc {
	ui := loadSwaggerUI()
	return func(c echo.Context) error {
		version, name, _ := strings.Cut(c.Param("*"), "/")
		a, ok := ui.assets[name]
		if !ok {
			return errorf(CodeAssetNotFound, "The API reference has no file %q.", c.Param("*"))
		}
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		if version == ui.version {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		if !a.gzipped {
			return c.Blob(http.StatusOK, a.contentType, a.body)
		}
		h.Add(echo.HeaderVary, echo.HeaderAcceptEncoding)
		if acceptsGzip(c.Request().Header.Values(echo.HeaderAcceptEncoding)) {
			h.Set(echo.HeaderContentEncoding, "gzip")
			return c.Blob(http.StatusOK, a.contentType, a.body)
		}
		zr, err := gzip.NewReader(bytes.NewReader(a.body))
		if err != nil {
			return fmt.Errorf("gunzip %s: %w", name, err)
		}
		return c.Stream(http.StatusOK, a.contentType, zr)
	}
}

// acceptsGzip reports whether an Accept-Encoding header names gzip with a
// non-zero weight. A bare "*" does not count: the plain file is always a
// correct answer, and every browser names gzip.
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			if c := strings.ToLower(strings.TrimSpace(coding)); c != "gzip" && c != "x-gzip" {
				continue
			}
			q := 1.0
			for _, p := range strings.Split(params, ";") {
				if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "q") {
					if f, err := strconv.ParseFloat(v, 64); err == nil {
						q = f
					}
				}
			}
			return q > 0
		}
	}
	return false
}
