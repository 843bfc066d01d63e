package sms

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const testSecret = "test-secret-Xy9"

// fakeAliyun is a local SendSms: it checks each request's signature with the
// secret, as Aliyun does, then answers with reply.
type fakeAliyun struct {
	*httptest.Server
	reply func(form url.Values) (status int, body string)

	mu    sync.Mutex
	forms []url.Values // the signed requests it accepted
}

func newFakeAliyun(t *testing.T, reply func(url.Values) (int, string)) *fakeAliyun {
	t.Helper()
	f := &fakeAliyun{reply: reply}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAliyun) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodPost || r.URL.Path != "/" ||
		r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"Code":"InvalidParameter","Message":"want a form POST to /"}`)
		return
	}
	if err := r.ParseForm(); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"Code":"InvalidParameter","Message":"bad form"}`)
		return
	}
	params := map[string]string{}
	for k, v := range r.PostForm {
		if k != "Signature" {
			params[k] = v[0]
		}
	}
	if r.PostForm.Get("Signature") != refSignature(http.MethodPost, params, testSecret) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"RequestId":"R-sig","Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched with our calculation."}`)
		return
	}
	f.mu.Lock()
	f.forms = append(f.forms, r.PostForm)
	f.mu.Unlock()
	status, body := f.reply(r.PostForm)
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func (f *fakeAliyun) accepted() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.forms...)
}

func answer(status int, body string) func(url.Values) (int, string) {
	return func(url.Values) (int, string) { return status, body }
}

func aliyunConfig(endpoint string) Config {
	return Config{Provider: "aliyun", Timeout: 2 * time.Second, Aliyun: AliyunConfig{
		AccessKeyID: "LTAI-test", AccessKeySecret: testSecret, SignName: "云伙伴",
		TemplateCode: "SMS_200", Endpoint: endpoint, RegionID: "cn-shanghai",
	}}
}

func newTestAliyun(t *testing.T, endpoint string, log *slog.Logger) *aliyunProvider {
	t.Helper()
	return mustNew(t, aliyunConfig(endpoint), log).(*aliyunProvider)
}

func TestAliyun_SendsSignedSendSms(t *testing.T) {
	f := newFakeAliyun(t, func(form url.Values) (int, string) {
		return http.StatusOK, `{"Code":"OK","Message":"OK","BizId":"biz-` + form.Get("OutId") + `","RequestId":"R-1"}`
	})
	log, logs := newLog()
	p := newTestAliyun(t, f.URL, log)
	text := `您的账户余额不足 100 元 & "请充值" <https://partner.example.com/a?b=1&c=2>`
	msgs := []Message{
		{ID: "d-cn", To: "+8613800138000", Text: text},
		{ID: "d-us", To: "+14155550100", Text: "Your balance is low."},
	}
	for _, m := range msgs {
		res, err := p.Send(context.Background(), m)
		if err != nil {
			t.Fatalf("Send(%s): %v", m.ID, err)
		}
		if res.ProviderID != "biz-"+m.ID {
			t.Errorf("Send(%s).ProviderID = %q, want the BizId", m.ID, res.ProviderID)
		}
		if !strings.HasPrefix(res.Response, `HTTP 200: {"Code":"OK"`) {
			t.Errorf("Send(%s).Response = %q", m.ID, res.Response)
		}
	}

	forms := f.accepted()
	if len(forms) != 2 {
		t.Fatalf("server accepted %d requests, want 2", len(forms))
	}
	fixed := map[string]string{
		"AccessKeyId": "LTAI-test", "Action": "SendSms", "Version": "2017-05-25", "Format": "JSON",
		"RegionId": "cn-shanghai", "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
		"SignName": "云伙伴", "TemplateCode": "SMS_200",
	}
	wantPhone := []string{"13800138000", "14155550100"}
	for i, form := range forms {
		for k, v := range fixed {
			if form.Get(k) != v {
				t.Errorf("request %d: %s = %q, want %q", i, k, form.Get(k), v)
			}
		}
		if got := form.Get("PhoneNumbers"); got != wantPhone[i] {
			t.Errorf("request %d: PhoneNumbers = %q, want %q", i, got, wantPhone[i])
		}
		if got := form.Get("OutId"); got != msgs[i].ID {
			t.Errorf("request %d: OutId = %q, want the message ID %q", i, got, msgs[i].ID)
		}
		var param map[string]string
		if err := json.Unmarshal([]byte(form.Get("TemplateParam")), &param); err != nil || len(param) != 1 || param["content"] != msgs[i].Text {
			t.Errorf("request %d: TemplateParam %s decodes to %v (%v), want {content: text}", i, form.Get("TemplateParam"), param, err)
		}
		if _, err := time.Parse("2006-01-02T15:04:05Z", form.Get("Timestamp")); err != nil {
			t.Errorf("request %d: Timestamp %q: %v", i, form.Get("Timestamp"), err)
		}
	}
	if forms[0].Get("SignatureNonce") == "" || forms[0].Get("SignatureNonce") == forms[1].Get("SignatureNonce") {
		t.Errorf("SignatureNonce %q then %q, want unique", forms[0].Get("SignatureNonce"), forms[1].Get("SignatureNonce"))
	}

	out := logs.String()
	for _, secret := range []string{testSecret, "余额不足", "balance", "13800138000"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log shows %q: %s", secret, out)
		}
	}
	if !strings.Contains(out, "+86138****8000") {
		t.Errorf("the log does not record the masked recipient: %s", out)
	}
}

func TestAliyun_FixedClockAndNonceGiveTheReferenceSignature(t *testing.T) {
	f := newFakeAliyun(t, answer(http.StatusOK, `{"Code":"OK","BizId":"b"}`))
	p := newTestAliyun(t, f.URL, nil)
	p.now = func() time.Time { return time.Date(2025, 3, 1, 8, 9, 10, 0, time.FixedZone("CST", 8*3600)) }
	p.nonce = func() string { return "fixed-nonce-1" }
	m := Message{ID: "d-1", To: "+8613800138000", Text: "测试 test"}
	if _, err := p.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	form := f.accepted()[0]
	want := map[string]string{
		"AccessKeyId": "LTAI-test", "Action": "SendSms", "Format": "JSON", "OutId": "d-1",
		"PhoneNumbers": "13800138000", "RegionId": "cn-shanghai", "SignName": "云伙伴",
		"SignatureMethod": "HMAC-SHA1", "SignatureNonce": "fixed-nonce-1", "SignatureVersion": "1.0",
		"TemplateCode": "SMS_200", "TemplateParam": `{"content":"测试 test"}`,
		"Timestamp": "2025-03-01T00:09:10Z", "Version": "2017-05-25",
	}
	if len(form) != len(want)+1 {
		t.Errorf("request has %d parameters, want %d and Signature: %v", len(form), len(want), form)
	}
	for k, v := range want {
		if form.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, form.Get(k), v)
		}
	}
	if got, ref := form.Get("Signature"), refSignature("POST", want, testSecret); got != ref {
		t.Errorf("Signature = %s, want %s", got, ref)
	}
}

func TestAliyun_WrongSecretIsRefusedPermanently(t *testing.T) {
	f := newFakeAliyun(t, answer(http.StatusOK, `{"Code":"OK","BizId":"b"}`))
	cfg := aliyunConfig(f.URL)
	cfg.Aliyun.AccessKeySecret = "not-the-secret"
	_, err := mustNew(t, cfg, nil).Send(context.Background(), sample)
	wantPermanent(t, err)
	if !strings.Contains(err.Error(), "SignatureDoesNotMatch") || !strings.Contains(ResponseOf(err), "HTTP 400") {
		t.Errorf("err = %v, response %q", err, ResponseOf(err))
	}
	if strings.Contains(err.Error(), "not-the-secret") {
		t.Error("the error shows the secret")
	}
	if len(f.accepted()) != 0 {
		t.Error("the fake accepted a badly signed request: its check cannot fail")
	}
}

func TestAliyun_ClassifiesAnswers(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		permanent bool
	}{
		{"illegal number", 200, `{"Code":"isv.MOBILE_NUMBER_ILLEGAL","Message":"非法手机号","RequestId":"R"}`, true},
		{"missing template parameter", 200, `{"Code":"isv.TEMPLATE_MISSING_PARAMETERS","Message":"模板缺少变量"}`, true},
		{"signature name illegal", 200, `{"Code":"isv.SMS_SIGNATURE_ILLEGAL","Message":"签名不合法"}`, true},
		{"no balance", 200, `{"Code":"isv.AMOUNT_NOT_ENOUGH","Message":"账户余额不足"}`, true},
		{"invalid parameters", 200, `{"Code":"isv.INVALID_PARAMETERS","Message":"参数异常"}`, true},
		{"unknown access key", 404, `{"Code":"InvalidAccessKeyId.NotFound","Message":"Specified access key is not found."}`, true},
		{"other 4xx without a body", 403, ``, true},
		{"rate limited", 200, `{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"触发分钟级流控Permits:1"}`, false},
		{"system error", 200, `{"Code":"isp.SYSTEM_ERROR","Message":"系统错误"}`, false},
		{"throttling", 400, `{"Code":"Throttling.User","Message":"Request was denied due to user flow control."}`, false},
		{"service unavailable code", 503, `{"Code":"ServiceUnavailable","Message":"The request has failed due to a temporary failure of the server."}`, false},
		{"HTTP 503 plain", 503, `upstream connect error`, false},
		{"HTTP 500", 500, `{"Code":"InternalError"}`, false},
		{"2xx without a verdict", 200, `<html>gateway</html>`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAliyun(t, answer(tt.status, tt.body))
			res, err := newTestAliyun(t, f.URL, nil).Send(context.Background(), sample)
			if tt.permanent {
				wantPermanent(t, err)
			} else {
				wantRetryable(t, err)
			}
			if res != (Result{}) {
				t.Errorf("Result = %+v on failure", res)
			}
			if want := summarize(tt.status, []byte(tt.body)); ResponseOf(err) != want {
				t.Errorf("ResponseOf = %q, want %q", ResponseOf(err), want)
			}
		})
	}
}

func TestAliyun_TimeoutAndClosedServerAreRetryable(t *testing.T) {
	slow := newSlowServer(t)
	cfg := aliyunConfig(slow.URL)
	cfg.Timeout = 100 * time.Millisecond
	_, err := mustNew(t, cfg, nil).Send(context.Background(), sample)
	wantRetryable(t, err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want it to wrap context.DeadlineExceeded", err)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	_, err = newTestAliyun(t, closed.URL, nil).Send(context.Background(), sample)
	wantRetryable(t, err)
}
