package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrForbiddenAddress is wrapped by the error of a connection refused by
// Guard.DialContext: the destination is in a private, loopback, link-local
// or otherwise special network that is not allowed.
var ErrForbiddenAddress = errors.New("webhook: destination address is not allowed (private, loopback, link-local or reserved; see WEBHOOK_ALLOWED_NETWORKS)")

const (
	// maxURLLength bounds an endpoint URL, in bytes.
	maxURLLength = 2048
	// resolveTimeout bounds CheckURL's DNS resolution.
	resolveTimeout = 5 * time.Second
)

// URLError is CheckURL's refusal of an endpoint URL; Reason says why, for
// the user who registered it (the caller maps it to a validation error).
type URLError struct {
	Reason string
}

// Error returns "webhook URL: " and the reason.
func (e *URLError) Error() string { return "webhook URL: " + e.Reason }

// urlErrorf builds a *URLError.
func urlErrorf(format string, args ...any) *URLError {
	return &URLError{Reason: fmt.Sprintf(format, args...)}
}

// ParseNetworks parses WEBHOOK_ALLOWED_NETWORKS: a comma-separated list of
// CIDR prefixes ("10.20.0.0/16", "fd00::/8") or single IP addresses (a
// /32 or /128). Spaces around items and empty items are ignored; an empty
// string gives nil. The error names the first bad item.
func ParseNetworks(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		var p netip.Prefix
		if strings.Contains(item, "/") {
			var err error
			if p, err = netip.ParsePrefix(item); err != nil {
				return nil, fmt.Errorf("webhook allowed networks: %q is not a CIDR prefix: %w", item, err)
			}
		} else {
			a, err := netip.ParseAddr(item)
			if err != nil {
				return nil, fmt.Errorf("webhook allowed networks: %q is not an IP address or CIDR prefix: %w", item, err)
			}
			if a.Zone() != "" {
				return nil, fmt.Errorf("webhook allowed networks: %q: an IPv6 zone is not allowed", item)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, normalizePrefix(p))
	}
	return out, nil
}

// normalizePrefix masks p and writes an IPv4-mapped IPv6 prefix as the
// IPv4 prefix it covers, since addresses are unmapped before matching.
func normalizePrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// normalizeAddr unmaps an IPv4-mapped IPv6 address and drops any IPv6
// zone, which would otherwise make netip.Prefix.Contains false.
func normalizeAddr(ip netip.Addr) netip.Addr {
	return ip.Unmap().WithZone("")
}

// specialPrefixes are the reserved networks that Allowed refuses besides
// those the netip.Addr predicates cover (loopback, private, link-local,
// multicast, unspecified). It returns a new slice on each call.
func specialPrefixes() []netip.Prefix {
	list := []string{
		"0.0.0.0/8",       // "this network"
		"100.64.0.0/10",   // carrier-grade NAT
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // TEST-NET-1
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // TEST-NET-2
		"203.0.113.0/24",  // TEST-NET-3
		"240.0.0.0/4",     // reserved, and the 255.255.255.255 broadcast
		"64:ff9b::/96",    // NAT64, which can reach private IPv4 space
		"64:ff9b:1::/48",  // local-use NAT64
		"2001:db8::/32",   // documentation
		"100::/64",        // discard-only
		"2002::/16",       // 6to4, which embeds any IPv4 address
		"2001::/32",       // Teredo, likewise
	}
	out := make([]netip.Prefix, len(list))
	for i, s := range list {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Guard decides which addresses webhooks may reach: public addresses, plus
// the operator's allow-list. It is safe for concurrent use.
type Guard struct {
	allow   []netip.Prefix // the operator's networks, allowed even when private; normalized
	blocked []netip.Prefix // specialPrefixes, built once; never modified
	lookup  func(ctx context.Context, host string) ([]netip.Addr, error)
}

// NewGuard returns a Guard that allows public addresses and, in addition,
// those in allow (the operator's internal networks, which also may be
// reached over plain http). allow is copied.
func NewGuard(allow []netip.Prefix) *Guard {
	g := &Guard{blocked: specialPrefixes(), lookup: defaultLookup}
	for _, p := range allow {
		if p.IsValid() {
			g.allow = append(g.allow, normalizePrefix(p))
		}
	}
	return g
}

// defaultLookup resolves host with the system's resolver.
func defaultLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// WithResolver returns a copy of g that resolves host names in CheckURL with
// lookup instead of the system's resolver (tests use a stub); nil restores
// the system's resolver. It does not change the addresses DialContext
// connects to, which the dialer resolves itself.
func (g *Guard) WithResolver(lookup func(ctx context.Context, host string) ([]netip.Addr, error)) *Guard {
	c := *g
	c.lookup = lookup
	if c.lookup == nil {
		c.lookup = defaultLookup
	}
	return &c
}

// inAllowList reports whether ip is in one of the operator's networks.
func (g *Guard) inAllowList(ip netip.Addr) bool {
	ip = normalizeAddr(ip)
	for _, p := range g.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Allowed reports whether webhooks may reach ip: true when it is in the
// allow-list; otherwise false for loopback, private, link-local, multicast,
// unspecified and other reserved addresses (CGNAT, documentation,
// benchmarking, NAT64...), and true for the rest, the public Internet. An
// IPv4-mapped IPv6 address is judged as the IPv4 address it maps; an
// invalid address is not allowed.
func (g *Guard) Allowed(ip netip.Addr) bool {
	ip = normalizeAddr(ip)
	switch {
	case !ip.IsValid():
		return false
	case g.inAllowList(ip):
		return true
	case ip.IsLoopback(), ip.IsPrivate(), ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(),
		ip.IsInterfaceLocalMulticast(), ip.IsMulticast(), ip.IsUnspecified():
		return false
	}
	for _, p := range g.blocked {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// CheckURL validates an endpoint URL when it is registered and returns it
// parsed. It must be at most 2048 bytes, absolute, https (or http when
// every address of its host is in the allow-list: an operator's internal
// receiver), without user info or fragment, with a host and, if any, a port
// in 1-65535. The host is resolved (a literal IP is used as is, within 5
// seconds) and every address must be Allowed. A refusal is a *URLError; an
// error of another kind means ctx ended before the check was done.
func (g *Guard) CheckURL(ctx context.Context, raw string) (*url.URL, error) {
	switch {
	case strings.TrimSpace(raw) == "":
		return nil, urlErrorf("is empty")
	case len(raw) > maxURLLength:
		return nil, urlErrorf("is longer than %d bytes", maxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error quotes the URL, which may hold a token.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, urlErrorf("is not a valid URL: %v", err)
	}
	switch {
	case u.Scheme == "":
		return nil, urlErrorf("must be an absolute https URL")
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, urlErrorf("scheme %q is not allowed, use https", u.Scheme)
	case u.User != nil:
		return nil, urlErrorf("must not contain user info")
	case u.Opaque != "" || u.Hostname() == "":
		return nil, urlErrorf("has no host")
	case strings.Contains(raw, "#"):
		return nil, urlErrorf("must not contain a fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, urlErrorf("port %s is not in 1-65535", p)
		}
	}

	host := u.Hostname() // without the brackets of an IPv6 literal
	addrs, err := g.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if !g.Allowed(a) {
			return nil, urlErrorf("host %s resolves to %s, a private, loopback or link-local address; operators can allow networks with WEBHOOK_ALLOWED_NETWORKS", host, normalizeAddr(a))
		}
	}
	if u.Scheme == "http" {
		for _, a := range addrs {
			if !g.inAllowList(a) {
				return nil, urlErrorf("must use https (http is only accepted for networks in WEBHOOK_ALLOWED_NETWORKS, and host %s resolves to %s)", host, normalizeAddr(a))
			}
		}
	}
	return u, nil
}

// resolve returns host's addresses: host itself when it is an IP literal,
// else what g.lookup finds within resolveTimeout. Failing to resolve, or
// no address, is a *URLError, unless ctx itself ended.
func (g *Guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := g.lookup(rctx, host)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("webhook URL: resolve %s: %w", host, ctx.Err())
	}
	if err != nil {
		return nil, urlErrorf("cannot resolve host %s: %v", host, err)
	}
	if len(addrs) == 0 {
		return nil, urlErrorf("host %s has no address", host)
	}
	return addrs, nil
}

// DialContext connects like net.Dialer (10 s timeout, 30 s keep-alive) for
// the Sender's transport, but refuses, with an error wrapping
// ErrForbiddenAddress, to connect to an address that is not Allowed. The
// check is made on the address actually connected to, after DNS
// resolution, so a name re-pointed at an internal address cannot bypass it.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: g.control}
	return d.DialContext(ctx, network, addr)
}

// control is the dialer's last word before each connect(2): address is the
// resolved "ip:port". Anything it cannot vouch for is refused.
func (g *Guard) control(network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp4", "tcp6":
	default:
		return fmt.Errorf("webhook: refusing %s connection to %s: %w", network, address, ErrForbiddenAddress)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook: refusing connection to unparsable address %q: %w", address, ErrForbiddenAddress)
	}
	if !g.Allowed(ap.Addr()) {
		return fmt.Errorf("webhook: refusing connection to %s: %w", normalizeAddr(ap.Addr()), ErrForbiddenAddress)
	}
	return nil
}
