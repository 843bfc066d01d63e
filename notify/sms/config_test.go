package sms

import (
	"strings"
	"testing"
	"time"
)

func validAliyun() AliyunConfig {
	return AliyunConfig{AccessKeyID: "LTAI-test", AccessKeySecret: "s3cret", SignName: "云伙伴", TemplateCode: "SMS_100"}
}

func TestNew_RefusesBadConfigNamingTheField(t *testing.T) {
	noKey := validAliyun()
	noKey.AccessKeyID = ""
	noSignTemplate := validAliyun()
	noSignTemplate.SignName, noSignTemplate.TemplateCode = "", " "
	badEndpoint := validAliyun()
	badEndpoint.Endpoint = "dysmsapi.aliyuncs.com"
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"unknown provider", Config{Provider: "twilio"}, []string{"Provider", "twilio"}},
		{"aliyun without AccessKeyID", Config{Provider: "aliyun", Aliyun: noKey}, []string{"Aliyun.AccessKeyID"}},
		{"aliyun without sign and template", Config{Provider: "aliyun", Aliyun: noSignTemplate}, []string{"Aliyun.SignName", "Aliyun.TemplateCode"}},
		{"aliyun with nothing", Config{Provider: "aliyun"}, []string{"Aliyun.AccessKeyID", "Aliyun.AccessKeySecret"}},
		{"aliyun endpoint without scheme", Config{Provider: "aliyun", Aliyun: badEndpoint}, []string{"Aliyun.Endpoint"}},
		{"webhook without URL", Config{Provider: "webhook"}, []string{"WebhookURL"}},
		{"webhook with a relative URL", Config{Provider: "webhook", WebhookURL: "/sms"}, []string{"WebhookURL"}},
		{"webhook with another scheme", Config{Provider: "webhook", WebhookURL: "ftp://example.com/sms"}, []string{"WebhookURL"}},
		{"negative timeout", Config{Timeout: -time.Second}, []string{"Timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.cfg, nil, nil)
			if err == nil {
				t.Fatalf("New = %v, want an error", p)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
}

func TestNew_ErrorNeverShowsTheWebhookURL(t *testing.T) {
	_, err := New(Config{Provider: "webhook", WebhookURL: "ftp://hooks.example.com/sms?token=abc123"}, nil, nil)
	if err == nil || strings.Contains(err.Error(), "abc123") {
		t.Fatalf("err = %v, want an error without the URL's token", err)
	}
}

func TestNew_SelectsProviderAndAppliesDefaults(t *testing.T) {
	for _, name := range []string{"", "log", " LOG "} {
		p, err := New(Config{Provider: name}, nil, nil)
		if err != nil || p.Name() != "log" {
			t.Errorf("New(Provider %q) = %v, %v; want the log provider", name, p, err)
		}
	}

	p, err := New(Config{Provider: "webhook", WebhookURL: "https://hooks.example.com/sms"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w := p.(*webhookProvider); w.Name() != "webhook" || w.timeout != DefaultTimeout || !w.Deduplicates() {
		t.Errorf("webhook provider = %+v", w)
	}

	p, err = New(Config{Provider: "aliyun", Aliyun: validAliyun(), Timeout: 3 * time.Second}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := p.(*aliyunProvider)
	if a.Name() != "aliyun" || a.Deduplicates() {
		t.Errorf("aliyun Name %q Deduplicates %v", a.Name(), a.Deduplicates())
	}
	if a.endpoint != DefaultAliyunEndpoint+"/" || a.cfg.RegionID != "cn-hangzhou" || a.timeout != 3*time.Second {
		t.Errorf("aliyun defaults: endpoint %q region %q timeout %s", a.endpoint, a.cfg.RegionID, a.timeout)
	}
}
