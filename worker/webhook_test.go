package worker

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

func TestPublicAddr(t *testing.T) {
	for addr, public := range map[string]bool{
		"8.8.8.8": true, "2001:4860:4860::8888": true, "100.128.0.1": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "169.254.170.2": false, "100.64.0.1": false, "0.0.0.0": false,
		"0.1.2.3": false, "224.0.0.1": false, "255.255.255.255": false, "::1": false, "::": false,
		"fe80::1": false, "fc00::1": false, "ff02::1": false, "::ffff:10.0.0.1": false, "::ffff:8.8.8.8": true,
	} {
		if got := publicAddr(netip.MustParseAddr(addr)); got != public {
			t.Errorf("%s: public %t, want %t", addr, got, public)
		}
	}
}

// The webhook client will not reach a loopback receiver unless allowed,
// and never follows a redirect.
func TestWebhookClient(t *testing.T) {
	var hits, redirected atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { redirected.Add(1) }))
	defer target.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	defer srv.Close()

	if _, err := newWebhookClient(false).Post(srv.URL, "application/json", nil); err == nil ||
		!strings.Contains(err.Error(), "not a public address") || hits.Load() != 0 {
		t.Fatalf("loopback webhook: err %v, %d hits; want it refused before connecting", err, hits.Load())
	}
	resp, err := newWebhookClient(true).Post(srv.URL, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || hits.Load() != 1 || redirected.Load() != 0 {
		t.Errorf("status %d, %d hits, %d redirected; want the 302 itself, not followed", resp.StatusCode, hits.Load(), redirected.Load())
	}
}
