package worker

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"syscall"
	"time"

	"github.com/hokusai-ai/inference-queue/internal/tenant"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// newWebhookClient returns the client that posts batch webhooks. Partners
// choose the URL, so unless allowPrivate it connects only to public
// addresses: the check runs on the address actually dialed, after DNS, so
// neither a name that resolves inside the network nor a rebinding can aim
// a worker at its own metadata endpoint, Redis or a neighbour. It goes
// direct (no proxy from the environment) and does not follow redirects:
// a 3xx answer is an attempt that failed.
func newWebhookClient(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if !allowPrivate {
		d.Control = refusePrivate
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = d.DialContext
	return &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// refusePrivate is a net.Dialer Control func: it fails the dial unless the
// address is public.
func refusePrivate(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return err
	}
	if !publicAddr(ip) {
		return fmt.Errorf("webhook to %s refused: %w (HOKUSAI_WEBHOOK_ALLOW_PRIVATE allows it)", ip, errNotPublic)
	}
	return nil
}

var errNotPublic = errors.New("not a public address")

// Webhook addresses are checked against the IANA IPv4 and IPv6
// Special-Purpose Address Registries: every block there that is not
// globally reachable is refused, and a few that are but never host a
// partner's receiver (the IETF blocks 192.0.0.0/24 and 2001::/23, the
// deprecated 6to4 relays and 6to4 itself, whose 2002:V4ADDR:: form would
// tunnel to any IPv4 address). IPv6 is accepted only inside 2000::/3, the
// one block IANA allocates for global unicast; that refuses ::/128, ::1,
// the discard-only and dummy prefixes (100::/64, 100:0:0:1::/64), SRv6 SIDs
// (5f00::/16), unique local (fc00::/7), link-local (fe80::/10), site-local
// (fec0::/10) and multicast (ff00::/8) without listing them, and whatever
// IANA reserves later outside it.
var (
	refused4 = prefixes(
		"0.0.0.0/8",       // "this network"
		"10.0.0.0/8",      // private
		"100.64.0.0/10",   // carrier-grade NAT, which clouds use inside their networks
		"127.0.0.0/8",     // loopback
		"169.254.0.0/16",  // link-local: the cloud metadata endpoints
		"172.16.0.0/12",   // private
		"192.0.0.0/24",    // IETF protocol assignments (DS-Lite, NAT64 discovery)
		"192.0.2.0/24",    // documentation (TEST-NET-1)
		"192.88.99.0/24",  // deprecated 6to4 relay anycast
		"192.168.0.0/16",  // private
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation (TEST-NET-2)
		"203.0.113.0/24",  // documentation (TEST-NET-3)
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, and the broadcast 255.255.255.255
	)
	global6  = netip.MustParsePrefix("2000::/3")
	refused6 = prefixes(
		"2001::/23",     // IETF protocol assignments (Teredo, benchmarking, ORCHID)
		"2001:db8::/32", // documentation
		"2002::/16",     // 6to4
		"3fff::/20",     // documentation
	)
	// nat64 is the well-known NAT64 prefix (RFC 6052): the address it
	// reaches is the IPv4 address in its last 32 bits, checked as such.
	// The local-use prefix 64:ff9b:1::/48 lies outside 2000::/3.
	nat64 = netip.MustParsePrefix("64:ff9b::/96")
)

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

// publicAddr reports whether a webhook may connect to ip: a globally
// reachable unicast address, IPv4 addresses mapped into IPv6 or behind
// the NAT64 prefix judged as the IPv4 address they reach.
func publicAddr(ip netip.Addr) bool {
	ip = ip.WithZone("")
	if nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return !within(ip, refused4)
	}
	return global6.Contains(ip) && !within(ip, refused6)
}

func within(ip netip.Addr, ps []netip.Prefix) bool {
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Contains(ip) })
}

// postWebhook makes one delivery attempt. When no answer came, cause is
// why, for the worker's log: the attempt itself carries only attemptError's
// name for it.
func (w *Worker) postWebhook(ctx context.Context, callback, secret string, body []byte, n int) (a jobs.WebhookAttempt, cause error) {
	a = jobs.WebhookAttempt{Attempt: n, At: time.Now().UnixMilli()}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, callback, bytes.NewReader(body))
	if err != nil {
		a.Error = hookErrURL
		return a, errors.New("the callback URL does not parse") // its text could hold a token
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hokusai-webhook/1")
	req.Header.Set(tenant.SignatureHeader, tenant.Sign(secret, body))
	resp, err := w.webhooks.Do(req)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // without the URL, whose query could hold a token
		}
		a.Error = attemptError(err)
		return a, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	a.Status = resp.StatusCode
	return a, nil
}

// The errors of attempts that got no answer, as tenants see them in a
// batch's webhook.attempts: a fixed vocabulary, so a batch status never
// shows the worker's resolver, an address, a port or Go's error text. The
// cause goes to the worker's log. An answer, whatever its code, is an
// attempt's status instead.
const (
	hookErrURL     = "invalid callback url"
	hookErrAddress = "address not allowed"
	hookErrDNS     = "dns lookup failed"
	hookErrRefused = "connection refused"
	hookErrClosed  = "connection closed"
	hookErrTimeout = "timed out"
	hookErrTLS     = "tls error"
	hookErrFailed  = "connection failed"
)

// attemptError names err, a failed POST's, in the vocabulary above.
func attemptError(err error) string {
	var dns *net.DNSError
	var timeout interface{ Timeout() bool }
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	var op *net.OpError
	switch {
	case errors.Is(err, errNotPublic):
		return hookErrAddress
	case errors.As(err, &dns):
		return hookErrDNS
	case errors.As(err, &timeout) && timeout.Timeout(): // a dial's, or the attempt's context
		return hookErrTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return hookErrRefused
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return hookErrClosed
	case errors.As(err, &verify), errors.As(err, &record),
		errors.As(err, &op) && op.Op == "remote error": // crypto/tls's for an alert from the peer
		return hookErrTLS
	}
	return hookErrFailed
}
