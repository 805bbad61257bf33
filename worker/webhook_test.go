package worker

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hokusai-ai/inference-queue/internal/redistest"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// Every special-purpose block a webhook must not reach is refused from its
// first address to its last, and the addresses just outside it (where they
// are public) are allowed. The blocks are listed here from the IANA
// registries, not from the code.
func TestPublicAddr(t *testing.T) {
	for _, c := range []struct {
		block   string
		outside []string // public neighbours
	}{
		{"0.0.0.0/8", []string{"1.0.0.0"}},
		{"10.0.0.0/8", []string{"9.255.255.255", "11.0.0.0"}},
		{"100.64.0.0/10", []string{"100.63.255.255", "100.128.0.0"}},
		{"127.0.0.0/8", []string{"126.255.255.255", "128.0.0.0"}},
		{"169.254.0.0/16", []string{"169.253.255.255", "169.255.0.0"}},
		{"172.16.0.0/12", []string{"172.15.255.255", "172.32.0.0"}},
		{"192.0.0.0/24", []string{"191.255.255.255", "192.0.1.0"}},
		{"192.0.2.0/24", []string{"192.0.1.255", "192.0.3.0"}},
		{"192.88.99.0/24", []string{"192.88.98.255", "192.88.100.0"}},
		{"192.168.0.0/16", []string{"192.167.255.255", "192.169.0.0"}},
		{"198.18.0.0/15", []string{"198.17.255.255", "198.20.0.0"}},
		{"198.51.100.0/24", []string{"198.51.99.255", "198.51.101.0"}},
		{"203.0.113.0/24", []string{"203.0.112.255", "203.0.114.0"}},
		{"224.0.0.0/4", []string{"223.255.255.255"}},
		{"240.0.0.0/4", nil},
		{"255.255.255.255/32", nil},
		{"::/128", nil},
		{"::1/128", nil},
		{"::ffff:0.0.0.0/104", []string{"::ffff:1.0.0.0"}}, // mapped: judged as IPv4
		{"::ffff:10.0.0.0/104", []string{"::ffff:9.255.255.255", "::ffff:11.0.0.0"}},
		{"::ffff:169.254.0.0/112", []string{"::ffff:169.253.255.255", "::ffff:169.255.0.0"}},
		{"64:ff9b::0.0.0.0/104", []string{"64:ff9b::1.0.0.0"}}, // NAT64: judged as IPv4
		{"64:ff9b::10.0.0.0/104", []string{"64:ff9b::9.255.255.255", "64:ff9b::11.0.0.0"}},
		{"64:ff9b::169.254.0.0/112", []string{"64:ff9b::169.253.255.255"}},
		{"64:ff9b::127.0.0.0/104", []string{"64:ff9b::128.0.0.0"}},
		{"64:ff9b:1::/48", nil}, // local-use NAT64: refused whatever it embeds
		{"100::/64", nil},
		{"100:0:0:1::/64", nil},
		{"2001::/23", []string{"2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:200::"}},
		{"2001:db8::/32", []string{"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db9::"}},
		{"2002::/16", []string{"2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2003::"}},
		{"3fff::/20", []string{"3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "3fff:1000::"}},
		{"5f00::/16", nil},
		{"fc00::/7", nil},
		{"fe80::/10", nil},
		{"fec0::/10", nil},
		{"ff00::/8", nil},
		{"::/3", []string{"2000::"}}, // below global unicast
		{"4000::/2", []string{"3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}}, // above it, unallocated
	} {
		p := netip.MustParsePrefix(c.block)
		for _, ip := range []netip.Addr{p.Masked().Addr(), lastAddr(p)} {
			if publicAddr(ip) {
				t.Errorf("%s (in %s) allowed", ip, c.block)
			}
		}
		for _, s := range c.outside {
			if !publicAddr(netip.MustParseAddr(s)) {
				t.Errorf("%s (outside %s) refused", s, c.block)
			}
		}
	}
	for _, s := range []string{"8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::8.8.8.8",
		"192.31.196.1", "2620:4f:8000::1"} { // AS112 is globally reachable
		if !publicAddr(netip.MustParseAddr(s)) {
			t.Errorf("%s refused", s)
		}
	}
	if publicAddr(netip.MustParseAddr("fe80::1%eth0")) {
		t.Error("a zoned link-local address allowed")
	}
}

// lastAddr is the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As16()
	off := 0
	if p.Addr().Is4() {
		off = 96
	}
	for i := off + p.Bits(); i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	if p.Addr().Is4() {
		return netip.AddrFrom4([4]byte(b[12:]))
	}
	return netip.AddrFrom16(b)
}

// The webhook client will not reach a loopback receiver unless allowed,
// even by a name that resolves to it, and never follows a redirect.
func TestWebhookClient(t *testing.T) {
	var hits, redirected atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { redirected.Add(1) }))
	defer target.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	defer srv.Close()

	// By address, and by a name: the check is on the address dialed.
	for _, u := range []string{srv.URL, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)} {
		if _, err := newWebhookClient(false).Post(u, "application/json", nil); err == nil ||
			!strings.Contains(err.Error(), "not a public address") || hits.Load() != 0 {
			t.Fatalf("loopback webhook %s: err %v, %d hits; want it refused before connecting", u, err, hits.Load())
		}
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

// An attempt that got no answer shows tenants one of a few fixed words,
// never the resolver, an address or Go's error text; the worker's log has
// the whole cause, without the callback's path, query or the signing
// secret.
func TestAttemptErrors(t *testing.T) {
	rdb := redistest.Client(t, srv)
	ok := func(http.ResponseWriter, *http.Request) {}
	hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then net/http sees the client go
		<-r.Context().Done()
	}))
	defer hang.Close()
	secure := httptest.NewTLSServer(http.HandlerFunc(ok))
	defer secure.Close()
	secure.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake the client gives up
	// closing closes the connection without an answer; with ?reset, by a
	// reset (no linger).
	closing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		if r.URL.Query().Has("reset") {
			_ = c.(*net.TCPConn).SetLinger(0)
		}
		c.Close()
	}))
	defer closing.Close()
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer busy.Close()
	picky := httptest.NewUnstartedServer(http.HandlerFunc(ok))
	picky.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	picky.StartTLS()
	defer picky.Close()
	picky.Config.ErrorLog = log.New(io.Discard, "", 0)
	trusting := newWebhookClient(true) // trusts picky's certificate, has none of its own
	trusting.Transport.(*http.Transport).TLSClientConfig = picky.Client().Transport.(*http.Transport).TLSClientConfig
	banner := bannerAddr(t, "SSH-2.0-OpenSSH_9.6\r\n")
	refused := refusedAddr(t)
	lookup := newWebhookClient(true)
	lookup.Transport.(*http.Transport).DialContext = (&net.Dialer{Resolver: nxdomainResolver(t)}).DialContext

	for _, c := range []struct {
		name, url string
		query     string // besides the token
		client    *http.Client
		timeout   time.Duration
		want      jobs.WebhookAttempt
		cause     string // in the log
	}{
		{name: "refused", url: "http://" + refused, want: jobs.WebhookAttempt{Error: "connection refused"}, cause: refused},
		{name: "private", url: busy.URL, client: newWebhookClient(false), want: jobs.WebhookAttempt{Error: "address not allowed"},
			cause: "127.0.0.1 refused: not a public address"},
		{name: "timeout", url: hang.URL, timeout: 50 * time.Millisecond, want: jobs.WebhookAttempt{Error: "timed out"},
			cause: "deadline exceeded"},
		{name: "untrusted certificate", url: secure.URL, want: jobs.WebhookAttempt{Error: "tls error"}, cause: "x509"},
		{name: "not tls", url: "https://" + banner, want: jobs.WebhookAttempt{Error: "tls error"},
			cause: "does not look like a TLS handshake"},
		{name: "tls alert", url: picky.URL, client: trusting, want: jobs.WebhookAttempt{Error: "tls error"}, cause: "remote error"},
		{name: "closed", url: closing.URL, want: jobs.WebhookAttempt{Error: "connection closed"}, cause: "EOF"},
		{name: "reset", url: closing.URL, query: "reset", want: jobs.WebhookAttempt{Error: "connection closed"}, cause: "connection reset"},
		{name: "dns", url: "http://nowhere.invalid", client: lookup, want: jobs.WebhookAttempt{Error: "dns lookup failed"},
			cause: "lookup nowhere.invalid on "}, // the resolver's address, in the log only
		{name: "http on the https port", url: strings.Replace(busy.URL, "http:", "https:", 1),
			want: jobs.WebhookAttempt{Error: "connection failed"}, cause: "HTTP response to HTTPS client"},
		{name: "invalid url", url: "http://[::1", want: jobs.WebhookAttempt{Error: "invalid callback url"}, cause: "does not parse"},
		{name: "answered", url: busy.URL, want: jobs.WebhookAttempt{Status: http.StatusServiceUnavailable}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			w := testWorker(rdb, Config{WebhookTimeout: c.timeout})
			w.log = slog.New(slog.NewJSONHandler(&logs, nil))
			if c.client != nil {
				w.webhooks = c.client
			}
			id := "err-" + c.name
			newBatchRecord(t, rdb, id, jobs.BatchFieldCallback, c.url+"/p4th?token=s3cret&"+c.query, jobs.BatchFieldTenant, "acme")
			if _, err := w.attemptWebhook(t.Context(), id); err != nil {
				t.Fatal(err)
			}
			var got jobs.WebhookAttempt
			if err := json.Unmarshal([]byte(rdb.LIndex(t.Context(), jobs.BatchHooksKey(id), 0).Val()), &got); err != nil {
				t.Fatal(err)
			}
			if got.Error != c.want.Error || got.Status != c.want.Status {
				t.Errorf("attempt %+v, want error %q and status %d", got, c.want.Error, c.want.Status)
			}
			if !strings.Contains(logs.String(), c.cause) {
				t.Errorf("the log lacks the cause %q:\n%s", c.cause, &logs)
			}
			for _, secret := range []string{"s3cret", "/p4th", "whsec_"} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("the log has %q:\n%s", secret, &logs)
				}
			}
		})
	}
}

// refusedAddr is a loopback address nobody listens on.
func refusedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// bannerAddr is a loopback address where a server that speaks neither
// TLS nor HTTP answers what the client sends first with banner, and closes
// once the client has.
func bannerAddr(t *testing.T, banner string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := c.Read(make([]byte, 512)); err == nil {
					_, _ = io.WriteString(c, banner)
					_, _ = io.Copy(io.Discard, c)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// nxdomainResolver is a resolver whose every question a DNS server on a
// loopback UDP port answers "no such domain".
func nxdomainResolver(t *testing.T) *net.Resolver {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			// The question back, flagged a response (QR), recursion
			// available, and RCODE 3, NXDOMAIN.
			resp := slices.Clone(buf[:n])
			resp[2] |= 0x80
			resp[3] = 0x80 | 3
			_, _ = pc.WriteTo(resp, from)
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}
