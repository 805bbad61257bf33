package worker

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
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
