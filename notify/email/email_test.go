package email_test

import (
	"strings"
	"testing"

	"partnerd/notify/email"
)

func TestNew_RefusesBadConfig(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  email.Config
		want string
	}{
		"unknown TLS mode":       {email.Config{Host: "smtp.example", From: "a@b.example", TLS: "ssl"}, "SMTP_TLS"},
		"port out of range":      {email.Config{Host: "smtp.example", From: "a@b.example", Port: 70000}, "SMTP_PORT"},
		"negative port":          {email.Config{Host: "smtp.example", From: "a@b.example", Port: -1}, "SMTP_PORT"},
		"no From with a host":    {email.Config{Host: "smtp.example"}, "SMTP_FROM"},
		"From not an address":    {email.Config{Host: "smtp.example", From: "noreply"}, "SMTP_FROM"},
		"negative connections":   {email.Config{Host: "smtp.example", From: "a@b.example", Connections: -1}, "negative"},
		"bad TLS even logging":   {email.Config{TLS: "yes"}, "SMTP_TLS"},
		"negative idle, logging": {email.Config{IdleTimeout: -1}, "negative"},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := email.New(tc.cfg, nil)
			if err == nil {
				_ = s.Close()
				t.Fatalf("New accepted %+v", tc.cfg)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %s", err, tc.want)
			}
		})
	}
}

func TestNew_AcceptsEachTLSMode(t *testing.T) {
	for _, mode := range []string{"", email.TLSNone, email.TLSStartTLS, email.TLSImplicit, "STARTTLS"} {
		s, err := email.New(email.Config{Host: "smtp.example", From: "Partner Center <noreply@partner.example>", TLS: mode}, nil)
		if err != nil {
			t.Errorf("TLS %q: %v", mode, err)
			continue
		}
		_ = s.Close()
	}
}
