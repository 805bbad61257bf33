package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// `hokusai dev` prints a key and a curl line; the request it describes works.
func TestDevPrintsAWorkingRequest(t *testing.T) {
	if srv == nil {
		t.Skip("no redis-server")
	}
	models, _ := filepath.Abs(filepath.Join("..", "..", demoModelDir))
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	env := map[string]string{"REDIS_URL": srv.URL}
	go func() {
		done <- run(ctx, []string{"hokusai", "dev", "--listen", "127.0.0.1:0", "--models", models}, func(k string) string { return env[k] }, nil, pw, io.Discard)
		pw.Close()
	}()
	var printed strings.Builder
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		printed.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "Ctrl-C") {
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dev returned %v", err)
		}
	}()
	out := printed.String()
	url := regexp.MustCompile(`curl -s (\S+) `).FindStringSubmatch(out)
	key := regexp.MustCompile(`X-API-Key: (hk_[A-Za-z0-9_-]+)`).FindStringSubmatch(out)
	body := regexp.MustCompile(`-d '(.*)'`).FindStringSubmatch(out)
	if url == nil || key == nil || body == nil {
		t.Fatalf("dev printed no usable curl line:\n%s", out)
	}
	var resp *http.Response
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest("POST", url[1], strings.NewReader(body[1]))
		req.Header.Set("X-API-Key", key[1])
		req.Header.Set("Content-Type", "application/json")
		r, err := http.DefaultClient.Do(req)
		if err == nil && r.StatusCode == 200 {
			resp = r
			break
		}
		if err == nil {
			r.Body.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the printed request never answered 200 (last: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"lead_score"`) {
		t.Errorf("response %s", b)
	}
}
