package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

const (
	secret    = "whsec_current-Qz7"
	oldSecret = "whsec_previous-Kp3"
)

var signedAt = time.Unix(1_760_000_000, 0)

func TestSign_Vector(t *testing.T) {
	// HMAC-SHA256 of "1760000000.{}" keyed with "k", computed independently
	// (printf '1760000000.{}' | openssl dgst -sha256 -hmac k).
	const want = "1f12dc53473f55a6c5e73dd13d1073fcc952677b06ef061adf93ddc6ca153f96"
	if got := Sign("k", signedAt, []byte("{}")); got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}

func TestSignature_Format(t *testing.T) {
	body := []byte(`{"id":"evt_1"}`)
	got := Signature(signedAt, body, secret, oldSecret)
	want := fmt.Sprintf("t=1760000000,v1=%s,v1=%s", Sign(secret, signedAt, body), Sign(oldSecret, signedAt, body))
	if got != want {
		t.Errorf("Signature = %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"id":"evt_1","type":"invoice.paid"}`)
	now := signedAt.Add(30 * time.Second)
	header := Signature(signedAt, body, secret)
	rotating := Signature(signedAt, body, secret, oldSecret)

	if err := Verify(header, body, secret, 5*time.Minute, now); err != nil {
		t.Errorf("Verify(round trip): %v", err)
	}
	for _, s := range []string{secret, oldSecret} {
		if err := Verify(rotating, body, s, 5*time.Minute, now); err != nil {
			t.Errorf("Verify(two v1, secret %q): %v", s, err)
		}
	}
	if err := Verify(header, body, secret, 0, signedAt.Add(24*365*time.Hour)); err != nil {
		t.Errorf("Verify(tolerance 0, a year later): %v", err)
	}
	if err := Verify(" t=1760000000 , v1="+Sign(secret, signedAt, body)+", v0=ignored", body, secret, time.Minute, now); err != nil {
		t.Errorf("Verify(spaces, unknown key): %v", err)
	}

	fails := []struct {
		name   string
		header string
		body   string
		secret string
		now    time.Time
		want   error
	}{
		{"changed body", header, `{"id":"evt_2","type":"invoice.paid"}`, secret, now, ErrNoMatch},
		{"wrong secret", header, string(body), "whsec_other", now, ErrNoMatch},
		{"old secret only in header", Signature(signedAt, body, oldSecret), string(body), secret, now, ErrNoMatch},
		{"stale", header, string(body), secret, signedAt.Add(5*time.Minute + time.Second), ErrTooOld},
		{"from the future", header, string(body), secret, signedAt.Add(-6 * time.Minute), ErrTooOld},
		{"empty", "", string(body), secret, now, ErrMalformedSignature},
		{"no timestamp", "v1=" + Sign(secret, signedAt, body), string(body), secret, now, ErrMalformedSignature},
		{"no v1", "t=1760000000", string(body), secret, now, ErrMalformedSignature},
		{"two timestamps", "t=1760000000,t=1760000001," + "v1=" + Sign(secret, signedAt, body), string(body), secret, now, ErrMalformedSignature},
		{"bad timestamp", "t=soon,v1=" + Sign(secret, signedAt, body), string(body), secret, now, ErrMalformedSignature},
		{"not k=v", "t=1760000000;v1=" + Sign(secret, signedAt, body), string(body), secret, now, ErrMalformedSignature},
		{"v1 not hex", "t=1760000000,v1=zz", string(body), secret, now, ErrMalformedSignature},
		{"absurd timestamp", "t=9223372036854775807,v1=" + hexMAC(secret, 9223372036854775807, body), string(body), secret, now, ErrTooOld},
	}
	for _, tc := range fails {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.header, []byte(tc.body), tc.secret, 5*time.Minute, tc.now)
			if !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func hexMAC(secret string, unix int64, body []byte) string {
	return fmt.Sprintf("%x", mac(secret, unix, body))
}

func TestParseNetworks(t *testing.T) {
	got, err := ParseNetworks(" 10.20.0.0/16, 192.168.1.7 ,fd00::/8,2001:db8::1,, ::ffff:172.16.0.0/108")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.20.0.0/16", "192.168.1.7/32", "fd00::/8", "2001:db8::1/128", "172.16.0.0/12"}
	if len(got) != len(want) {
		t.Fatalf("ParseNetworks = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("item %d = %s, want %s", i, got[i], want[i])
		}
	}
	for _, empty := range []string{"", "  ", ","} {
		if got, err := ParseNetworks(empty); err != nil || got != nil {
			t.Errorf("ParseNetworks(%q) = %v, %v, want nil, nil", empty, got, err)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "intranet", "10.0.0.1/8/2", "fe80::1%eth0"} {
		_, err := ParseNetworks("10.0.0.0/8, " + bad)
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseNetworks(%q) error = %v, want one naming the item", bad, err)
		}
	}
}

func TestAllowed(t *testing.T) {
	g := NewGuard(nil)
	cases := []struct {
		ip   string
		want bool
	}{
		{"127.0.0.1", false},
		{"::1", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false},
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"100.64.0.1", false},
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"::", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.0.0.1", false},
		{"224.0.0.1", false},
		{"239.255.255.250", false},
		{"ff02::1", false},
		{"ff01::1", false},
		{"192.0.0.8", false},
		{"192.0.2.1", false},
		{"198.18.0.1", false},
		{"198.51.100.1", false},
		{"203.0.113.1", false},
		{"240.0.0.1", false},
		{"255.255.255.255", false},
		{"64:ff9b::a00:1", false},
		{"64:ff9b:1::1", false},
		{"2001:db8::1", false},
		{"100::1", false},
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"93.184.216.34", true},
		{"172.32.0.1", true},
		{"::ffff:8.8.8.8", true},
		{"2606:4700:4700::1111", true},
	}
	for _, tc := range cases {
		if got := g.Allowed(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("Allowed(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
	if g.Allowed(netip.Addr{}) {
		t.Error("Allowed(zero Addr) = true")
	}

	allow, err := ParseNetworks("127.0.0.0/8, fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	g = NewGuard(allow)
	for _, ip := range []string{"127.0.0.1", "127.1.2.3", "::ffff:127.0.0.1", "fd00::5", "8.8.8.8"} {
		if !g.Allowed(netip.MustParseAddr(ip)) {
			t.Errorf("with 127.0.0.0/8 and fd00::/8 allowed: Allowed(%s) = false", ip)
		}
	}
	for _, ip := range []string{"::1", "10.0.0.1", "169.254.169.254"} {
		if g.Allowed(netip.MustParseAddr(ip)) {
			t.Errorf("with 127.0.0.0/8 and fd00::/8 allowed: Allowed(%s) = true", ip)
		}
	}
}

// stubResolver resolves from a table and fails for any other name; it
// fails the test if asked about an IP literal, which CheckURL must not
// resolve.
func stubResolver(t *testing.T, table map[string][]string) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		if _, err := netip.ParseAddr(host); err == nil {
			t.Errorf("resolver asked about IP literal %q", host)
		}
		addrs, ok := table[host]
		if !ok {
			return nil, fmt.Errorf("lookup %s: no such host", host)
		}
		var out []netip.Addr
		for _, a := range addrs {
			out = append(out, netip.MustParseAddr(a))
		}
		return out, nil
	}
}

func TestCheckURL(t *testing.T) {
	table := map[string][]string{
		"hooks.example.com":    {"93.184.216.34"},
		"internal.example.com": {"10.0.0.5"},
		"mixed.example.com":    {"93.184.216.34", "192.168.0.10"},
		"empty.example.com":    {},
		"localhost":            {"127.0.0.1", "::1"},
	}
	public := NewGuard(nil).WithResolver(stubResolver(t, table))
	loopback := NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}).WithResolver(stubResolver(t, table))
	ctx := context.Background()

	refused := []struct {
		g      *Guard
		url    string
		reason string // a part of the reason
	}{
		{public, "http://8.8.8.8/", "https"},
		{loopback, "http://8.8.8.8/", "https"},
		{loopback, "http://hooks.example.com/x", "https"},
		{public, "https://user:pw@example.com/", "user info"},
		{public, "https://user@example.com/", "user info"},
		{public, "ftp://hooks.example.com/x", `"ftp"`},
		{public, "javascript:alert(1)", `"javascript"`},
		{public, "", "empty"},
		{public, "/relative/path", "absolute"},
		{public, "hooks.example.com/x", "absolute"},
		{public, "https:opaque", "no host"},
		{public, "https:///path", "no host"},
		{public, "https://:443/path", "no host"},
		{public, "https://hooks.example.com/x#frag", "fragment"},
		{public, "https://hooks.example.com/x#", "fragment"},
		{public, "https://hooks.example.com:0/x", "port"},
		{public, "https://hooks.example.com:70000/x", "port"},
		{public, "https://hooks.example.com:port/x", "valid URL"},
		{public, "https://hooks.example.com/" + strings.Repeat("a", 2048), "2048"},
		{public, "https://169.254.169.254/latest/meta-data", "169.254.169.254"},
		{public, "https://[::1]/", "::1"},
		{public, "https://[::ffff:127.0.0.1]/", "127.0.0.1"},
		{public, "https://[fe80::1%25eth0]/", "fe80::1"},
		{public, "https://127.0.0.1:8443/h", "127.0.0.1"},
		{public, "https://internal.example.com/h", "10.0.0.5"},
		{public, "https://mixed.example.com/h", "192.168.0.10"},
		{public, "https://localhost/h", "127.0.0.1"},
		{loopback, "https://localhost/h", "::1"},
		{public, "https://unknown.example.com/h", "resolve"},
		{public, "https://empty.example.com/h", "no address"},
	}
	for _, tc := range refused {
		u, err := tc.g.CheckURL(ctx, tc.url)
		var ue *URLError
		if !errors.As(err, &ue) {
			t.Errorf("CheckURL(%.80q) = %v, %v, want a *URLError", tc.url, u, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), "webhook URL: ") || !strings.Contains(ue.Reason, tc.reason) {
			t.Errorf("CheckURL(%.80q) = %q, want a reason mentioning %q", tc.url, err, tc.reason)
		}
	}
	if _, err := public.CheckURL(ctx, "https://internal.example.com/h"); err == nil || !strings.Contains(err.Error(), "WEBHOOK_ALLOWED_NETWORKS") {
		t.Errorf("private refusal %v does not tell about WEBHOOK_ALLOWED_NETWORKS", err)
	}

	accepted := []struct {
		g   *Guard
		url string
	}{
		{public, "https://hooks.example.com/x"},
		{public, "HTTPS://hooks.example.com:8443/x?token=abc"},
		{public, "https://93.184.216.34/x"},
		{public, "https://[2606:4700:4700::1111]/x"},
		{loopback, "http://127.0.0.1:1234/h"},
		{loopback, "https://127.0.0.1/h"},
		{loopback, "https://hooks.example.com/x"},
	}
	for _, tc := range accepted {
		u, err := tc.g.CheckURL(ctx, tc.url)
		if err != nil {
			t.Errorf("CheckURL(%q): %v", tc.url, err)
			continue
		}
		if u.Host == "" {
			t.Errorf("CheckURL(%q) = %v, without host", tc.url, u)
		}
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	slow := NewGuard(nil).WithResolver(func(ctx context.Context, host string) ([]netip.Addr, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	_, err := slow.CheckURL(cancelled, "https://hooks.example.com/x")
	var ue *URLError
	if err == nil || errors.As(err, &ue) || !errors.Is(err, context.Canceled) {
		t.Errorf("CheckURL(cancelled ctx) = %v, want context.Canceled, not a *URLError", err)
	}
}

// receiver is a loopback webhook endpoint that counts the requests it gets.
type receiver struct {
	*httptest.Server
	hits atomic.Int32
}

func newReceiver(t *testing.T, h http.HandlerFunc) *receiver {
	t.Helper()
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		h(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

// loopbackSender may reach httptest servers: 127.0.0.0/8 is allowed.
func loopbackSender(t *testing.T, timeout time.Duration) *Sender {
	t.Helper()
	s := NewSender(NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}), timeout)
	t.Cleanup(s.Close)
	return s
}

func request(url string) Request {
	return Request{
		URL:         url,
		EventID:     "evt_123",
		EventType:   "invoice.paid",
		DeliveryKey: "dlv_456",
		Body:        []byte(`{"id":"evt_123","type":"invoice.paid","data":{"amount":1200}}`),
		Secrets:     []string{secret, oldSecret},
		At:          time.Now(),
	}
}

func TestSend_SignedPost(t *testing.T) {
	type seen struct {
		method, path string
		header       http.Header
		body         []byte
	}
	got := make(chan seen, 1)
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.RequestURI(), r.Header.Clone(), body}
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "  queued \n")
	})
	s := loopbackSender(t, 2*time.Second)
	req := request(rcv.URL + "/hooks/partnerd?x=1")

	res, err := s.Send(context.Background(), req)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if res.StatusCode != http.StatusAccepted || res.Response != "HTTP 202: queued" {
		t.Errorf("Send = %+v, want 202 and \"HTTP 202: queued\"", res)
	}
	r := <-got
	if r.method != http.MethodPost || r.path != "/hooks/partnerd?x=1" || string(r.body) != string(req.Body) {
		t.Errorf("receiver got %s %s %q", r.method, r.path, r.body)
	}
	for k, v := range map[string]string{
		"Content-Type":  "application/json",
		"User-Agent":    "partnerd-webhooks/1",
		EventIDHeader:   "evt_123",
		EventTypeHeader: "invoice.paid",
		DeliveryHeader:  "dlv_456",
	} {
		if r.header.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, r.header.Get(k), v)
		}
	}
	sig := r.header.Get(SignatureHeader)
	for _, sec := range []string{secret, oldSecret} {
		if err := Verify(sig, r.body, sec, 5*time.Minute, time.Now()); err != nil {
			t.Errorf("Verify(%s, secret %q): %v", sig, sec, err)
		}
	}
	if want := fmt.Sprintf("t=%d,", req.At.Unix()); !strings.HasPrefix(sig, want) {
		t.Errorf("signature %q does not start with %q", sig, want)
	}
}

func TestSend_ServerError(t *testing.T) {
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database is down", http.StatusInternalServerError)
	})
	res, err := loopbackSender(t, 2*time.Second).Send(context.Background(), request(rcv.URL))
	var se *StatusError
	if !errors.As(err, &se) {
		t.Fatalf("Send = %v, want a *StatusError", err)
	}
	if se.Code != 500 || res.StatusCode != 500 || res.Response != "HTTP 500: database is down" || se.Response != res.Response {
		t.Errorf("Send = %+v, %+v", res, se)
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "evt_123") {
		t.Errorf("error %q leaks the secret or the body", err)
	}
}

func TestSend_LongInvalidResponse(t *testing.T) {
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		// 511 ASCII bytes, then 3-byte characters: the cut at 512 splits
		// one; and an invalid byte early on.
		io.WriteString(w, "\xff"+strings.Repeat("a", 510)+strings.Repeat("€", 5000))
	})
	res, err := loopbackSender(t, 2*time.Second).Send(context.Background(), request(rcv.URL))
	if err != nil {
		t.Fatal(err)
	}
	body, ok := strings.CutPrefix(res.Response, "HTTP 200: ")
	if !ok || !utf8.ValidString(res.Response) || len(body) > maxResponse+2 || !strings.HasSuffix(body, "a") {
		t.Errorf("Response = %q (%d bytes), want a valid, cut summary", res.Response, len(res.Response))
	}
}

func TestSend_RedirectNotFollowed(t *testing.T) {
	var target atomic.Int32
	var rcv *receiver
	rcv = newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/target" {
			target.Add(1)
			return
		}
		http.Redirect(w, r, rcv.URL+"/target", http.StatusFound)
	})
	res, err := loopbackSender(t, 2*time.Second).Send(context.Background(), request(rcv.URL+"/hook"))
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusFound || res.StatusCode != http.StatusFound {
		t.Errorf("Send = %+v, %v, want a 302 *StatusError", res, err)
	}
	if n := target.Load(); n != 0 {
		t.Errorf("redirect target hit %d times", n)
	}
}

func TestSend_ForbiddenAddress(t *testing.T) {
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {})
	s := NewSender(NewGuard(nil), 2*time.Second)
	defer s.Close()
	res, err := s.Send(context.Background(), request(rcv.URL))
	if !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("Send = %v, want ErrForbiddenAddress", err)
	}
	if res.StatusCode != 0 || res.Response != err.Error() {
		t.Errorf("Result = %+v", res)
	}
	if !strings.Contains(err.Error(), "post webhook to 127.0.0.1:") {
		t.Errorf("error %q does not name the host", err)
	}
	if n := rcv.hits.Load(); n != 0 {
		t.Errorf("handler hit %d times", n)
	}
	// nil guard: public addresses only.
	if _, err := NewSender(nil, 0).Send(context.Background(), request(rcv.URL)); !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("NewSender(nil).Send = %v, want ErrForbiddenAddress", err)
	}
}

func TestSend_Timeout(t *testing.T) {
	release := make(chan struct{})
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		// The server notices the client leaving only once the body is read.
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release) // before rcv.Close, registered as cleanup
	start := time.Now()
	res, err := loopbackSender(t, 200*time.Millisecond).Send(context.Background(), request(rcv.URL))
	if err == nil {
		t.Fatalf("Send = %+v, want a timeout error", res)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Send took %s with a 200ms timeout", d)
	}
	var se *StatusError
	if errors.As(err, &se) || res.StatusCode != 0 {
		t.Errorf("Send = %+v, %v, want a transport error", res, err)
	}
}

func TestSend_BadRequest(t *testing.T) {
	s := loopbackSender(t, time.Second)
	for _, r := range []Request{
		{URL: "http://127.0.0.1:1/", Body: []byte("{}")},
		{URL: "http://127.0.0.1:1/", Body: []byte("{}"), Secrets: []string{""}},
		{URL: "", Secrets: []string{secret}},
		{URL: "/relative", Secrets: []string{secret}},
		{URL: "http://127.0.0.1:1/%zz?token=" + secret, Secrets: []string{secret}},
	} {
		if _, err := s.Send(context.Background(), r); err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("Send(%+v) = %v, want an error without the secret", r, err)
		}
	}
}
