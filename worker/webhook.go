package worker

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
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
		return fmt.Errorf("webhook to %s refused: not a public address (HOKUSAI_WEBHOOK_ALLOW_PRIVATE allows it)", ip)
	}
	return nil
}

// cgnat is the shared address space of carrier-grade NAT (RFC 6598), which
// clouds use inside their networks.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// publicAddr reports whether ip is a public unicast address: not loopback,
// private, link-local (the cloud metadata endpoints), CGNAT, "this network"
// (0.0.0.0/8), unspecified or multicast.
func publicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.Is4() && (ip.As4()[0] == 0 || cgnat.Contains(ip)) {
		return false
	}
	return ip.IsGlobalUnicast() && !ip.IsPrivate()
}
