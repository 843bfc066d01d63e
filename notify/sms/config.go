package sms

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Config selects and configures the provider (from environment variables parsed elsewhere).
type Config struct {
	Provider   string // "log" (default when empty), "webhook", "aliyun"
	WebhookURL string
	Aliyun     AliyunConfig
	Timeout    time.Duration // per request, default 10s
}

// AliyunConfig configures Alibaba Cloud SMS (dysmsapi SendSms). Every field
// but Endpoint and RegionID is required.
type AliyunConfig struct {
	AccessKeyID, AccessKeySecret string
	SignName                     string // the approved signature (签名), e.g. "云伙伴"
	TemplateCode                 string // an approved template whose text is the single variable ${content}
	Endpoint                     string // default "https://dysmsapi.aliyuncs.com"
	RegionID                     string // default "cn-hangzhou"
}

// Defaults applied by New to fields left empty.
const (
	DefaultTimeout        = 10 * time.Second
	DefaultAliyunEndpoint = "https://dysmsapi.aliyuncs.com"
	DefaultAliyunRegionID = "cn-hangzhou"
)

// New returns the provider cfg selects. It refuses an unknown provider and a
// missing or malformed required field, naming the field, so that a bad
// configuration stops the process at start rather than at the first SMS.
// client carries the requests (nil: a client of its own); each request is
// bounded by cfg.Timeout whatever the client's own timeout. log receives
// the providers' records (nil: slog.Default()).
func New(cfg Config, client *http.Client, log *slog.Logger) (Provider, error) {
	if client == nil {
		client = &http.Client{}
	}
	if log == nil {
		log = slog.Default()
	}
	switch {
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("sms: Timeout must not be negative, got %s", cfg.Timeout)
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultTimeout
	}
	name := strings.ToLower(strings.TrimSpace(cfg.Provider))
	switch name {
	case "", "log":
		return &logProvider{log: log}, nil
	case "webhook":
		if err := checkURL("WebhookURL", cfg.WebhookURL); err != nil {
			return nil, err
		}
		return &webhookProvider{url: cfg.WebhookURL, client: client, timeout: cfg.Timeout, log: log}, nil
	case "aliyun":
		a := cfg.Aliyun
		var missing []string
		for _, f := range []struct{ name, value string }{
			{"Aliyun.AccessKeyID", a.AccessKeyID},
			{"Aliyun.AccessKeySecret", a.AccessKeySecret},
			{"Aliyun.SignName", a.SignName},
			{"Aliyun.TemplateCode", a.TemplateCode},
		} {
			if strings.TrimSpace(f.value) == "" {
				missing = append(missing, f.name)
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("sms: provider %q needs %s", name, strings.Join(missing, ", "))
		}
		if a.Endpoint == "" {
			a.Endpoint = DefaultAliyunEndpoint
		}
		if a.RegionID == "" {
			a.RegionID = DefaultAliyunRegionID
		}
		if err := checkURL("Aliyun.Endpoint", a.Endpoint); err != nil {
			return nil, err
		}
		return newAliyun(a, client, cfg.Timeout, log), nil
	default:
		return nil, fmt.Errorf("sms: unknown Provider %q (want log, webhook or aliyun)", cfg.Provider)
	}
}

// checkURL requires an absolute http(s) URL. The error never repeats the
// URL itself: webhook URLs often carry a token.
func checkURL(field, raw string) error {
	if strings.TrimSpace(raw) == "" {
		return fmt.Errorf("sms: %s is required", field)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("sms: %s is not a URL", field)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("sms: %s must be an absolute http or https URL", field)
	}
	return nil
}
