package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// memoryFlood floods async jobs into a Redis with a small maxmemory
// (noeviction) and retention of a minute, until it has refused work for a
// while, then counts accepted jobs that did not finish and times how long
// after the flood new work is accepted again (as retention expires).
func memoryFlood(ctx context.Context, dir string) (*result, error) {
	s, _, stop, err := redisStack(ctx, dir, []string{"--maxmemory", "16mb", "--maxmemory-policy", "noeviction"}, "HOKUSAI_RESULT_TTL=1m")
	if err != nil {
		return nil, err
	}
	defer stop()
	r := newResult("Redis at maxmemory 16mb (noeviction), async flood, retention 1m")
	fctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	go func() { // stop 5 s after the first refusal
		defer cancel()
		for fctx.Err() == nil {
			r.mu.Lock()
			full := !r.firstFail.IsZero()
			r.mu.Unlock()
			if full {
				select {
				case <-time.After(5 * time.Second):
				case <-fctx.Done():
				}
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	flood(fctx, s, r, loadConc, 100000, []byte(`{"inputs": `+lead+`}`))
	ended := time.Now()
	if r.firstFail.IsZero() {
		r.note += "Redis never filled; "
	}
	settle(ctx, s, r, 90*time.Second)
	r.firstBackOK = time.Time{} // a 202 while the reserve flickered in the flood is no recovery
	r.awaitAccept(ctx, s, 4*time.Minute-time.Since(ended))
	if r.firstBackOK.IsZero() {
		r.note += "new work was still refused 4 min after the flood; "
	} else {
		r.recovery = r.firstBackOK.Sub(ended)
	}
	r.note += "recovery timed from the flood's end; "
	return r, nil
}

// slowClients opens slow connections to the API (half trickling their
// headers, half their body, a byte a second) while four clients send sync
// predicts, and times how long the API takes to close every slow one.
func slowClients(ctx context.Context, dir string) (*result, error) {
	s, _, stop, err := redisStack(ctx, dir, nil, "HOKUSAI_BODY_TIMEOUT=5s")
	if err != nil {
		return nil, err
	}
	defer stop()
	const slow = 256
	r := newResult(fmt.Sprintf("slowloris: %d slow connections beside sync predicts (c=4)", slow))
	start := time.Now()
	var open, closed atomic.Int64
	var lastClose atomic.Int64
	var wg sync.WaitGroup
	sctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	for i := range slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if trickle(sctx, strings.TrimPrefix(s.base, "http://"), s.key, i%2 == 0, &open) {
				closed.Add(1)
				lastClose.Store(int64(time.Since(start)))
			}
		}()
	}
	lctx, stop := context.WithTimeout(ctx, 15*time.Second)
	defer stop()
	var lw sync.WaitGroup
	for range 4 {
		lw.Add(1)
		go func() {
			defer lw.Done()
			for n := 0; n < 5000 && lctx.Err() == nil; n++ {
				code, b := s.do(ctx, "POST", "/api/v1/models/21/predict", []byte(`{"inputs": `+lead+`}`), nil)
				r.record(code, b, time.Now())
			}
		}()
	}
	lw.Wait()
	wg.Wait()
	r.recovery = time.Duration(lastClose.Load())
	r.note = fmt.Sprintf("%d of %d slow connections opened, %d closed by the API; recovery: the last closed", open.Load(), slow, closed.Load())
	return r, nil
}

// trickle sends a predict a byte a second, in its headers or (with a
// Content-Length) its body, and reports whether the server closed the
// connection before ctx ended.
func trickle(ctx context.Context, addr, key string, inHeaders bool, open *atomic.Int64) bool {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	open.Add(1)
	head := "POST /api/v1/models/21/predict HTTP/1.1\r\nHost: x\r\nX-API-Key: " + key + "\r\nContent-Type: application/json\r\n"
	rest := "X-Slow: " + strings.Repeat("a", 100) + "\r\n\r\n"
	if !inHeaders {
		head += "Content-Length: 1000\r\n\r\n"
		rest = strings.Repeat(" ", 1000)
	}
	if _, err := c.Write([]byte(head)); err != nil {
		return true
	}
	go func() { <-ctx.Done(); c.Close() }()
	for i := 0; i < len(rest) && ctx.Err() == nil; i++ {
		time.Sleep(time.Second)
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte{rest[i]}); err != nil {
			return ctx.Err() == nil
		}
		// The server answers (408) and closes: a read sees it.
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		var b [1]byte
		if n, err := c.Read(b[:]); n > 0 || err != nil && !isTimeout(err) {
			return ctx.Err() == nil
		}
	}
	return false
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
