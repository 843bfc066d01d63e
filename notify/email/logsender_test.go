package email_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"partnerd/notify/email"
)

func TestLogSender_LogsWithoutBodiesAndSucceeds(t *testing.T) {
	var buf bytes.Buffer
	s, err := email.New(email.Config{From: "noreply@partner.example"}, slog.New(slog.NewJSONHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := email.Message{
		Key:     "evt-9:user-3:email",
		To:      "alice@customer.example",
		Subject: "Your invitation",
		Text:    "secret-text-token-123",
		HTML:    "<a href=\"https://x/accept?token=secret-html-token-456\">accept</a>",
		Locale:  "en-US",
	}
	res, err := s.Send(t.Context(), m)
	if err != nil {
		t.Fatalf("log sender: %v", err)
	}
	if !strings.Contains(res.Response, email.MessageID(m.Key, "noreply@partner.example")) {
		t.Errorf("response %q lacks the Message-ID", res.Response)
	}
	out := buf.String()
	for _, want := range []string{m.Key, "a***@customer.example", m.Subject} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q: %s", want, out)
		}
	}
	for _, secret := range []string{"secret-text-token-123", "secret-html-token-456", "alice@"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q: %s", secret, out)
		}
	}
}

func TestLogSender_RefusesInvalidMessages(t *testing.T) {
	s, err := email.New(email.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(t.Context(), email.Message{Key: "k", To: "nobody", Text: "x"}); !email.IsPermanent(err) {
		t.Errorf("invalid recipient: %v, want permanent", err)
	}
}
