package sms

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// aliyunProvider sends through Alibaba Cloud SMS, SendSms of dysmsapi
// 2017-05-25, with an approved signature and a template whose whole text is
// ${content}.
type aliyunProvider struct {
	cfg      AliyunConfig
	endpoint string // cfg.Endpoint with a path
	client   *http.Client
	timeout  time.Duration
	log      *slog.Logger
	now      func() time.Time // the request Timestamp; tests fix it
	nonce    func() string    // SignatureNonce, unique per request; tests fix it
}

func newAliyun(cfg AliyunConfig, client *http.Client, timeout time.Duration, log *slog.Logger) *aliyunProvider {
	endpoint := cfg.Endpoint
	if u, err := url.Parse(endpoint); err == nil && u.Path == "" {
		endpoint += "/"
	}
	return &aliyunProvider{cfg: cfg, endpoint: endpoint, client: client, timeout: timeout, log: log, now: time.Now, nonce: rand.Text}
}

// aliyunAnswer is SendSms's JSON answer, on success and on failure alike.
type aliyunAnswer struct {
	Code      string
	Message   string
	BizID     string `json:"BizId"`
	RequestID string `json:"RequestId"`
}

// describe renders a failed answer for an error message.
func (a aliyunAnswer) describe(status int) string {
	s := fmt.Sprintf("HTTP %d", status)
	if a.Code != "" {
		s += " " + a.Code
	}
	if a.Message != "" {
		s += ": " + a.Message
	}
	return s
}

// Name is "aliyun".
func (p *aliyunProvider) Name() string { return "aliyun" }

// Send calls SendSms with Message.ID as OutId, which Aliyun returns in
// delivery receipts. Code "OK" is success and ProviderID is the BizId.
// Retried: HTTP 5xx, timeouts and connection errors, isp.SYSTEM_ERROR,
// isv.BUSINESS_LIMIT_CONTROL (per-number rate limit), Throttling* and
// ServiceUnavailable. Any other code (an illegal number, a missing template
// parameter, a bad signature name, no balance, SignatureDoesNotMatch, an
// unknown AccessKeyId...) and any other 4xx is permanent.
func (p *aliyunProvider) Send(ctx context.Context, m Message) (Result, error) {
	if err := checkMessage(m); err != nil {
		return Result{}, err
	}
	param, err := encodeJSON(map[string]string{"content": m.Text})
	if err != nil {
		return Result{}, &PermanentError{Err: fmt.Errorf("sms aliyun: encode message %s: %w", m.ID, err)}
	}
	params := map[string]string{
		"AccessKeyId":      p.cfg.AccessKeyID,
		"Action":           "SendSms",
		"Format":           "JSON",
		"RegionId":         p.cfg.RegionID,
		"SignatureMethod":  "HMAC-SHA1",
		"SignatureNonce":   p.nonce(),
		"SignatureVersion": "1.0",
		"Timestamp":        p.now().UTC().Format("2006-01-02T15:04:05Z"),
		"Version":          "2017-05-25",
		"PhoneNumbers":     aliyunPhone(m.To),
		"SignName":         p.cfg.SignName,
		"TemplateCode":     p.cfg.TemplateCode,
		"TemplateParam":    string(param),
		"OutId":            m.ID,
	}
	params["Signature"] = signRPC(http.MethodPost, params, p.cfg.AccessKeySecret)
	form := make(url.Values, len(params))
	for k, v := range params {
		form.Set(k, v)
	}

	status, body, err := post(ctx, p.client, p.timeout, p.endpoint, "application/x-www-form-urlencoded", []byte(form.Encode()))
	if err != nil {
		return Result{}, fmt.Errorf("sms aliyun: message %s: %w", m.ID, err)
	}
	summary := summarize(status, body)
	var a aliyunAnswer
	parsed := json.Unmarshal(body, &a) == nil && a.Code != ""
	ok2xx := status >= 200 && status < 300
	switch {
	case ok2xx && a.Code == "OK":
		p.log.DebugContext(ctx, "sms sent", slog.String("provider", "aliyun"),
			slog.String("sms_id", m.ID), slog.String("to", maskPhone(m.To)),
			slog.String("biz_id", a.BizID), slog.String("request_id", a.RequestID))
		return Result{ProviderID: a.BizID, Response: summary}, nil
	case status >= 500 || (parsed && aliyunRetryable(a.Code)):
		return Result{}, &retryableError{err: fmt.Errorf("sms aliyun: message %s: %s", m.ID, a.describe(status)), response: summary}
	case ok2xx && !parsed:
		// A 2xx without a verdict (a proxy's page, a body cut short): the
		// outcome is unknown, so it is left to the retry policy.
		return Result{}, &retryableError{err: fmt.Errorf("sms aliyun: message %s: HTTP %d without a result code", m.ID, status), response: summary}
	default:
		return Result{}, &PermanentError{
			Err:      fmt.Errorf("sms aliyun: message %s refused: %s", m.ID, a.describe(status)),
			Response: summary,
		}
	}
}

// Deduplicates is false: Aliyun does not de-duplicate by OutId (it only
// echoes it in receipts), so a resend after an unknown outcome can reach the
// phone twice.
func (p *aliyunProvider) Deduplicates() bool { return false }

// aliyunRetryable reports whether an Aliyun error code is worth retrying:
// the service's own failures and rate limits.
func aliyunRetryable(code string) bool {
	switch {
	case code == "isp.SYSTEM_ERROR", code == "isv.BUSINESS_LIMIT_CONTROL", code == "ServiceUnavailable":
		return true
	case strings.HasPrefix(code, "Throttling"):
		return true
	}
	return false
}

// aliyunPhone writes an E.164 number the way SendSms wants it: mainland
// China numbers without +86, others with the country code and no '+'.
func aliyunPhone(e164 string) string {
	digits := strings.TrimPrefix(e164, "+")
	if rest, ok := strings.CutPrefix(digits, "86"); ok {
		return rest
	}
	return digits
}
