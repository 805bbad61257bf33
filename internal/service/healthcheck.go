package service

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Healthcheck implements `BINARY healthcheck [--url URL] [--timeout D]`: it
// exits cleanly (nil) only when URL answers 200.
func Healthcheck(ctx context.Context, args []string, defaultURL string, stdout io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", defaultURL, "health endpoint to probe")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", *url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe %s: %s %s", *url, resp.Status, body)
	}
	fmt.Fprintf(stdout, "%s\n", body)
	return nil
}
