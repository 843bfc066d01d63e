package sms

import (
	"context"
	"strings"
	"testing"
)

func TestLogProvider_LogsMaskedNumberNotText(t *testing.T) {
	log, buf := newLog()
	p := mustNew(t, Config{}, log)
	res, err := p.Send(context.Background(), Message{ID: "d-1", To: "+8613800138000", Text: "您的验证码是 424242"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Response == "" {
		t.Error("Response is empty, want a note for the attempt log")
	}
	out := buf.String()
	for _, want := range []string{`"level":"INFO"`, `"sms_id":"d-1"`, `"to":"+86138****8000"`, `"segments":1`} {
		if !strings.Contains(out, want) {
			t.Errorf("log %s lacks %s", out, want)
		}
	}
	for _, secret := range []string{"424242", "验证码", "13800138000"} {
		if strings.Contains(out, secret) {
			t.Errorf("log %s shows %q", out, secret)
		}
	}
	if !p.Deduplicates() {
		t.Error("the log provider reaches no phone: Deduplicates must be true")
	}
}

func TestProviders_RefuseUndeliverableMessagesPermanently(t *testing.T) {
	bad := []Message{
		{ID: "", To: "+8613800138000", Text: "hi"},
		{ID: "d-1", To: "13800138000", Text: "hi"},
		{ID: "d-1", To: "+8613800138000", Text: "  "},
	}
	providers := []Provider{
		mustNew(t, Config{}, nil),
		// Unreachable on purpose: a request would fail as retryable.
		mustNew(t, Config{Provider: "webhook", WebhookURL: "http://127.0.0.1:1/sms"}, nil),
		mustNew(t, Config{Provider: "aliyun", Aliyun: AliyunConfig{AccessKeyID: "k", AccessKeySecret: "s", SignName: "n", TemplateCode: "t", Endpoint: "http://127.0.0.1:1"}}, nil),
	}
	for _, p := range providers {
		for _, m := range bad {
			_, err := p.Send(context.Background(), m)
			if !IsPermanent(err) {
				t.Errorf("%s.Send(%+v) = %v, want a permanent error", p.Name(), m, err)
			}
		}
	}
}
