package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

const lead = `{"company_size": 250, "engagement_score": 82, "website_visits": 14, "email_opens": 9,
	"content_downloads": 3, "demo_requested": true, "budget_confirmed": true, "industry": "Technology",
	"decision_timeline": "1-3 months", "title": "VP of Sales"}`

// result is one probe's row.
type result struct {
	probe                  string
	sent, accepted, lost   int
	duplicated             int
	byStatus               map[string]int // "503 queue_unavailable": n; "hang" for no answer
	recovery               time.Duration  // -1: not measured
	note                   string
	mu                     sync.Mutex
	ids                    []string // every request id sent, answered or not
	acceptedIDs            []string
	firstFail, firstBackOK time.Time
}

func newResult(probe string) *result {
	return &result{probe: probe, byStatus: map[string]int{}, recovery: -1}
}

// note records one answer: its status and code, and, for a 202, the job.
func (r *result) record(code int, body []byte, at time.Time) {
	var b struct {
		Code      string `json:"code"`
		RequestID string `json:"request_id"`
	}
	_ = json.Unmarshal(body, &b)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent++
	if b.RequestID != "" {
		r.ids = append(r.ids, b.RequestID)
	}
	switch code {
	case 202, 200:
		r.accepted++
		r.acceptedIDs = append(r.acceptedIDs, b.RequestID)
		if !r.firstFail.IsZero() && r.firstBackOK.IsZero() {
			r.firstBackOK = at
		}
	case 0:
		r.byStatus["hang"]++
	default:
		r.byStatus[fmt.Sprintf("%d %s", code, b.Code)]++
		if r.firstFail.IsZero() {
			r.firstFail = at
		}
	}
}

// flood sends async jobs from conc clients until ctx ends or max are sent.
func flood(ctx context.Context, s *stack, r *result, conc, max int, body []byte) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	left := max
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				if left == 0 {
					mu.Unlock()
					return
				}
				left--
				mu.Unlock()
				code, b := s.do(context.WithoutCancel(ctx), "POST", "/api/v1/models/21/jobs", body, nil)
				r.record(code, b, time.Now())
			}
		}()
	}
	wg.Wait()
}

// settle polls every job the load named until each is finished or
// within is spent, and counts as lost the accepted jobs that are gone (404)
// or never finished, and as duplicated the worker's runs beyond the
// distinct jobs that ran.
func settle(ctx context.Context, s *stack, r *result, within time.Duration) {
	accepted := map[string]bool{}
	for _, id := range r.acceptedIDs {
		accepted[id] = true
	}
	pending := append([]string(nil), r.ids...)
	ran := 0
	deadline := time.Now().Add(within)
	for len(pending) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		var next []string
		var mu sync.Mutex
		work := make(chan string)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for id := range work {
					code, b := s.do(ctx, "GET", "/api/v1/jobs/"+id, nil, nil)
					var st struct {
						Status string `json:"status"`
					}
					_ = json.Unmarshal(b, &st)
					mu.Lock()
					switch {
					case code == 200 && st.Status == "succeeded":
						ran++
					case code == 404 || code == 200 && (st.Status == "failed" || st.Status == "canceled"):
						if accepted[id] {
							r.lost++
						}
					default: // queued, running, or Redis not answering yet
						next = append(next, id)
					}
					mu.Unlock()
				}
			}()
		}
		for _, id := range pending {
			work <- id
		}
		close(work)
		wg.Wait()
		pending = next
		if len(pending) > 0 {
			time.Sleep(500 * time.Millisecond)
		}
	}
	for _, id := range pending {
		if accepted[id] {
			r.lost++
		}
	}
	if len(pending) > 0 {
		r.note += fmt.Sprintf("%d never finished within %s (counted lost); ", len(pending), within)
	}
	if d := s.succeededTasks(ctx) - ran; d > 0 {
		r.duplicated = d
	}
}

func (r *result) print(w io.Writer) {
	var errs []string
	for k, n := range r.byStatus {
		errs = append(errs, fmt.Sprintf("%s: %d", k, n))
	}
	sort.Strings(errs)
	rec := "-"
	if r.recovery >= 0 {
		rec = r.recovery.Round(100 * time.Millisecond).String()
	}
	fmt.Fprintln(w, "| probe | sent | accepted | lost | duplicated | errors by status | time to recover | note |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %s | %s | %s |\n", r.probe, r.sent, r.accepted, r.lost, r.duplicated,
		orNone(strings.Join(errs, ", ")), rec, orNone(strings.TrimSuffix(r.note, "; ")))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
