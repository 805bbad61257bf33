package stacktest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"
)

// documentedRequest is model 21's request as the old service's verification
// report documents it (shared/compat/requests/documented.json): /docs must
// offer it, and it must score.
const documentedRequest = `{"inputs": {"company_size": 1000, "industry": "Technology", "engagement_score": 75,
	"website_visits": 10, "email_opens": 5, "content_downloads": 3, "demo_requested": true,
	"budget_confirmed": false, "decision_timeline": "Q2 2025", "title": "VP of Engineering"}, "options": {}}`

// predictOp is the predict operation's block in Swagger UI (tag "default",
// no operationId, so the id is derived from method and path).
const predictOp = "#operations-default-post_api_v1_models__id__predict"

// A partner opens /docs, pastes a key into Authorize, and tries model 21's
// predict from the page with the documented example: it scores. Every
// request the page makes goes to the API itself, and no script throws.
func TestDocsTryItOutInBrowser(t *testing.T) {
	browser := chromium(t)
	s := startStack(t, stackOptions{})
	ctx := browserTab(t, browser)

	var mu sync.Mutex
	var requests []*network.Request
	var problems []string
	if err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			requests = append(requests, ev.Request)
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			if d.Exception != nil {
				problems = append(problems, "exception: "+d.Exception.Description)
			} else {
				problems = append(problems, fmt.Sprintf("exception: %s at %s:%d", d.Text, d.URL, d.LineNumber))
			}
		case *log.EventEntryAdded:
			// A blocked script or style (the page's Content-Security-Policy)
			// is reported here, not as an exception.
			if ev.Entry.Source == log.EntrySourceSecurity {
				problems = append(problems, "security: "+ev.Entry.Text)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}

	// Checked when the test ends, also after a failed step: a blocked
	// script or an exception is often why a step found nothing.
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		paths := map[string]bool{}
		for _, r := range requests {
			u, err := url.Parse(r.URL)
			if err != nil {
				t.Errorf("the page requested %q: %v", r.URL, err)
				continue
			}
			if u.Scheme == "data" || u.Scheme == "blob" {
				continue
			}
			if u.Scheme+"://"+u.Host != s.url {
				t.Errorf("the page requested %s, outside the API's origin %s", r.URL, s.url)
			}
			paths[u.Path] = true
			if u.Path == "/api/v1/models/21/predict" && r.Headers["X-API-Key"] != s.key {
				t.Errorf("the page's predict call carried X-API-Key %v, not the key pasted into Authorize", r.Headers["X-API-Key"])
			}
		}
		for _, p := range []string{"/docs", "/openapi.json", "/api/v1/models/21/predict"} {
			if !paths[p] {
				t.Errorf("the page never requested %s; it requested %v", p, paths)
			}
		}
		for _, p := range problems {
			t.Errorf("the page reported %s", p)
		}
		if t.Failed() {
			t.Logf("API and worker logs:\n%s", s.logs)
		}
	}()

	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(s.url+"/docs"))
	if err != nil || resp.Status != 200 {
		t.Fatalf("/docs: %v %v", resp, err)
	}
	// Authorize: paste the key into the X-API-Key scheme's field, apply it,
	// close the dialog.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("button.btn.authorize"), chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.ID("api_key_value"), s.key),
		chromedp.Click(chromedp.CSS(`form:has(#api_key_value) button.authorize`)),
		chromedp.WaitVisible(chromedp.CSS(`button[aria-label="Remove authorization"]`)),
		chromedp.Click(chromedp.CSS("button.btn-done")),
		chromedp.WaitNotPresent(chromedp.CSS(".dialog-ux")),
		chromedp.Click(chromedp.CSS(predictOp+" button.opblock-summary-control")),
		chromedp.WaitVisible(chromedp.CSS(predictOp+" button.try-out__btn")),
	); err != nil {
		t.Fatalf("authorize and open predict: %v", err)
	}
	// tryItOutEnabled opens the form at once (the button reads "Cancel");
	// a partner on a page without it clicks "Try it out" first.
	label, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(predictOp+" button.try-out__btn")))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(label) == "Try it out" {
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(predictOp+" button.try-out__btn"))); err != nil {
			t.Fatal(err)
		}
	}
	idField := predictOp + ` tr[data-param-name="id"] input`
	prefer := predictOp + ` tr[data-param-name="Prefer"] input`
	body := predictOp + " textarea.body-param__text"
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(body))); err != nil {
		t.Fatal(err)
	}
	id, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(idField)))
	if err != nil {
		t.Fatal(err)
	}
	if id != "21" {
		t.Errorf("the id field is pre-filled with %q, want the example 21", id)
	}
	if id == "" {
		if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(idField), "21")); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(prefer))); err != nil || v != "" {
		t.Errorf("the Prefer field holds %q (%v): Execute would not wait for the score", v, err)
	}
	text, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(body)))
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	if err := json.Unmarshal([]byte(text), &got); err != nil {
		t.Fatalf("the pre-filled body is not JSON: %v\n%s", err, text)
	}
	if err := json.Unmarshal([]byte(documentedRequest), &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the pre-filled body is not the documented request (-want +got):\n%s", diff)
	}

	// As pre-filled: the documented request itself must score. A demo model
	// that refuses the report's decision_timeline values ("Q2 2025")
	// answers 422 here, and partners' code written from the report fails
	// the same way.
	t.Run("documented example", func(t *testing.T) {
		execute(t, ctx)
	})
	// The same flow with a timeline the demo model has always accepted,
	// entered over the example's as a partner would: proves the page works
	// whatever the model makes of "Q2 2025".
	t.Run("edited timeline", func(t *testing.T) {
		start, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`(() => {
			const ta = document.querySelector(%q);
			const at = ta.value.indexOf("Q2 2025");
			ta.focus();
			ta.setSelectionRange(at, at + "Q2 2025".length);
			return at;
		})()`, body)))
		if err != nil || start < 0 {
			t.Fatalf("find the timeline in the body: %d %v", start, err)
		}
		if _, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: "1-3 months"}); err != nil {
			t.Fatal(err)
		}
		execute(t, ctx)
	})
}

// execute clears any earlier answer, clicks Execute on the predict form and
// reads the live response the page shows: it must be a 200 with a score.
func execute(t *testing.T, ctx context.Context) {
	t.Helper()
	live := predictOp + " .live-responses-table"
	clearBtn := predictOp + " button.btn-clear"
	shown, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q) !== null`, clearBtn)))
	if err != nil {
		t.Fatal(err)
	}
	if shown {
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(clearBtn)), chromedp.WaitNotPresent(chromedp.CSS(live))); err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(predictOp+" button.execute")),
		chromedp.WaitVisible(chromedp.CSS(live+" .response-col_description .highlight-code")),
	); err != nil {
		t.Fatalf("execute: %v", err)
	}
	status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(live+" tr.response td.response-col_status")))
	if err != nil {
		t.Fatal(err)
	}
	body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(live+" .response-col_description .highlight-code pre")))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Predictions map[string]any `json:"predictions"`
	}
	if code, _, _ := strings.Cut(strings.TrimSpace(status), "\n"); code != "200" || !strings.Contains(body, `"lead_score"`) {
		t.Fatalf("the page shows %q with body:\n%s", status, body)
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("the body the page shows is not JSON: %v\n%s", err, body)
	}
	if _, ok := got.Predictions["lead_score"].(float64); !ok {
		t.Errorf("the page shows no numeric lead_score:\n%s", body)
	}
}
