// Package webhook signs and sends partnerd's webhook deliveries over HTTP.
//
// A delivery is one POST of a JSON body to a partner's endpoint, signed with
// HMAC-SHA256 in the SignatureHeader ("t=<unix seconds>,v1=<hex>"), so that
// the receiver can check, with Verify, that the body came from partnerd and
// is recent. While a rotated secret's predecessor is still valid, each
// delivery carries one v1 signature per secret.
//
// Endpoints are untrusted input, so the package refuses destinations inside
// private networks (SSRF protection) twice: a Guard checks an endpoint's URL
// when it is registered (CheckURL), and the Sender's transport checks every
// address it actually connects to, after DNS resolution (DialContext), so
// that a name re-pointed at an internal address later (DNS rebinding) is
// still refused. Operators can allow networks of their own (an internal
// receiver) with WEBHOOK_ALLOWED_NETWORKS, parsed by ParseNetworks.
//
// The package knows nothing of the database: the caller records attempts
// and decides when to retry. Errors never contain a secret or a body.
package webhook
