package api

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// rawClient neither asks for gzip nor undoes it, so the test sees exactly
// what the API sends.
var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true}}

func get(t *testing.T, url string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := rawClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

var pageRefs = regexp.MustCompile(`(?:src|href)="([^"]*)"`)

// /docs is an HTML page whose every reference is a path on this API, and
// every asset it names is served with its type, gzipped only to clients
// that ask for it, cached long under its versioned path; other paths under
// /docs/assets are JSON 404s.
func TestDocsServesItsOwnAssets(t *testing.T) {
	base := startServer(t, Config{})
	resp, page := get(t, base+"/docs", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=UTF-8" {
		t.Fatalf("/docs: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if bytes.Contains(page, []byte("//")) {
		t.Errorf("/docs names another origin or an absolute URL:\n%s", page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("/docs Content-Security-Policy %q does not confine the page to this origin", csp)
	}
	var assets []string
	for _, m := range pageRefs.FindAllSubmatch(page, -1) {
		ref := string(m[1])
		switch {
		case ref == "/openapi.json":
		case strings.HasPrefix(ref, docsAssetsPath):
			assets = append(assets, ref)
		default:
			t.Errorf("/docs refers to %q, neither the document nor an asset", ref)
		}
	}
	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}
	seen := map[string]bool{}
	for _, ref := range assets {
		seen[ref[strings.LastIndex(ref, "."):]] = true
		plainResp, plain := get(t, base+ref, nil)
		gzResp, gz := get(t, base+ref, map[string]string{"Accept-Encoding": "br, gzip"})
		for _, r := range []*http.Response{plainResp, gzResp} {
			if r.StatusCode != 200 || r.Header.Get("Content-Type") != types[ref[strings.LastIndex(ref, "."):]] ||
				!strings.Contains(r.Header.Get("Cache-Control"), "immutable") || r.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s: %d, Content-Type %q, Cache-Control %q", ref, r.StatusCode, r.Header.Get("Content-Type"), r.Header.Get("Cache-Control"))
			}
		}
		if e := plainResp.Header.Get("Content-Encoding"); e != "" || bytes.HasPrefix(plain, []byte{0x1f, 0x8b}) {
			t.Errorf("%s without Accept-Encoding: Content-Encoding %q, body starts % x", ref, e, plain[:min(2, len(plain))])
		}
		if strings.HasSuffix(ref, ".png") {
			if !bytes.Equal(gz, plain) || !bytes.HasPrefix(plain, []byte("\x89PNG")) {
				t.Errorf("%s: not the same PNG both ways", ref)
			}
			continue
		}
		if gzResp.Header.Get("Content-Encoding") != "gzip" || gzResp.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("%s with Accept-Encoding gzip: Content-Encoding %q, Vary %q", ref, gzResp.Header.Get("Content-Encoding"), gzResp.Header.Get("Vary"))
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		unzipped, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(unzipped, plain) || len(plain) < 10000 {
			t.Errorf("%s: the gzipped file unzipped (%d bytes, %v) differs from the plain one (%d bytes)", ref, len(unzipped), err, len(plain))
		}
	}
	for ext := range types {
		if !seen[ext] {
			t.Errorf("/docs names no %s asset: %q", ext, assets)
		}
	}

	// A page from another deploy still gets the file, but not for a year.
	version, _, _ := strings.Cut(strings.TrimPrefix(assets[0], docsAssetsPath), "/")
	other := strings.Replace(assets[0], version, "000000000000", 1)
	if resp, _ := get(t, base+other, nil); resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("%s: %d, Cache-Control %q; want the file, uncached", other, resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	for _, path := range []string{
		docsAssetsPath + version + "/nope.js",
		docsAssetsPath + version + "/oauth2-redirect.html",
		docsAssetsPath + "swagger-ui.css",
		docsAssetsPath,
	} {
		resp, body := get(t, base+path, nil)
		var e struct{ Code string }
		if resp.StatusCode != 404 || json.Unmarshal(body, &e) != nil || e.Code != CodeAssetNotFound {
			t.Errorf("%s: %d %s, want a JSON 404 %s", path, resp.StatusCode, body, CodeAssetNotFound)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		header []string
		want   bool
	}{
		{nil, false},
		{[]string{"gzip"}, true},
		{[]string{"gzip, deflate, br, zstd"}, true},
		{[]string{"br", "GZip;q=0.5"}, true},
		{[]string{"x-gzip"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"deflate, gzip; q=0.000"}, false},
		{[]string{"*"}, false},
		{[]string{"identity"}, false},
		{[]string{"gzipped"}, false},
	} {
		if got := acceptsGzip(tc.header); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %t, want %t", tc.header, got, tc.want)
		}
	}
}
