package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// webhookServer answers every POST with status and body and records what it
// received.
type webhookServer struct {
	*httptest.Server
	mu          sync.Mutex
	bodies      []string
	contentType string
}

func newWebhookServer(t *testing.T, status int, body string) *webhookServer {
	t.Helper()
	s := &webhookServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		if r.Method == http.MethodPost {
			s.bodies = append(s.bodies, string(b))
		}
		s.contentType = r.Header.Get("Content-Type")
		s.mu.Unlock()
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *webhookServer) received() ([]string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodies...), s.contentType
}

func webhook(t *testing.T, url string, timeout time.Duration) Provider {
	t.Helper()
	return mustNew(t, Config{Provider: "webhook", WebhookURL: url, Timeout: timeout}, nil)
}

var sample = Message{ID: "evt-42/acct-7/sms", To: "+8613800138000", Text: `余额不足 <100 & "请充值"`}

func TestWebhook_PostsTheContractBody(t *testing.T) {
	srv := newWebhookServer(t, http.StatusOK, `{"accepted":true}`)
	res, err := webhook(t, srv.URL+"/sms?token=abc", 0).Send(context.Background(), sample)
	if err != nil {
		t.Fatal(err)
	}
	bodies, ct := srv.received()
	if len(bodies) != 1 {
		t.Fatalf("server got %d requests, want 1", len(bodies))
	}
	want := `{"id":"evt-42/acct-7/sms","to":"+8613800138000","text":"余额不足 <100 & \"请充值\""}`
	if bodies[0] != want {
		t.Errorf("body\n got %s\nwant %s", bodies[0], want)
	}
	var fields map[string]string
	if err := json.Unmarshal([]byte(bodies[0]), &fields); err != nil || len(fields) != 3 ||
		fields["id"] != sample.ID || fields["to"] != sample.To || fields["text"] != sample.Text {
		t.Errorf("body decodes to %v (%v), want exactly id, to, text of the message", fields, err)
	}
	if ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if res.Response != `HTTP 200: {"accepted":true}` {
		t.Errorf("Response = %q", res.Response)
	}
}

func TestWebhook_Any2xxSucceeds(t *testing.T) {
	for _, status := range []int{http.StatusCreated, http.StatusAccepted, http.StatusNoContent} {
		srv := newWebhookServer(t, status, "")
		if _, err := webhook(t, srv.URL, 0).Send(context.Background(), sample); err != nil {
			t.Errorf("HTTP %d: %v, want success", status, err)
		}
	}
}

func TestWebhook_ResponseSummaryIsTruncated(t *testing.T) {
	srv := newWebhookServer(t, http.StatusOK, strings.Repeat("好", 1000))
	res, err := webhook(t, srv.URL, 0).Send(context.Background(), sample)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Response, "HTTP 200: 好") || len(res.Response) > 520 || !strings.HasSuffix(res.Response, "…") {
		t.Errorf("Response (%d bytes) = %q…", len(res.Response), res.Response[:min(40, len(res.Response))])
	}
	if !strings.ContainsRune(res.Response, '好') || strings.ContainsRune(res.Response, '\uFFFD') {
		t.Error("Response cut a character in half")
	}
}

func TestWebhook_ClassifiesStatuses(t *testing.T) {
	tests := []struct {
		status    int
		permanent bool
	}{
		{http.StatusBadRequest, true},
		{http.StatusUnauthorized, true},
		{http.StatusNotFound, true},
		{http.StatusUnprocessableEntity, true},
		{http.StatusRequestTimeout, false},
		{http.StatusTooManyRequests, false},
		{http.StatusInternalServerError, false},
		{http.StatusBadGateway, false},
		{http.StatusServiceUnavailable, false},
	}
	for _, tt := range tests {
		srv := newWebhookServer(t, tt.status, "no")
		_, err := webhook(t, srv.URL, 0).Send(context.Background(), sample)
		if err == nil || IsPermanent(err) != tt.permanent {
			t.Errorf("HTTP %d: err = %v, permanent %v; want permanent %v", tt.status, err, IsPermanent(err), tt.permanent)
			continue
		}
		if want := fmt.Sprintf("HTTP %d: no", tt.status); ResponseOf(err) != want {
			t.Errorf("HTTP %d: ResponseOf = %q", tt.status, ResponseOf(err))
		}
	}
}

func TestWebhook_PermanentErrorCarriesTheAnswer(t *testing.T) {
	srv := newWebhookServer(t, http.StatusBadRequest, `{"error":"bad number"}`)
	_, err := webhook(t, srv.URL, 0).Send(context.Background(), sample)
	var pe *PermanentError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *PermanentError", err)
	}
	if pe.Response != `HTTP 400: {"error":"bad number"}` {
		t.Errorf("Response = %q", pe.Response)
	}
}

func TestWebhook_TimeoutIsRetryable(t *testing.T) {
	srv := newSlowServer(t)
	start := time.Now()
	_, err := webhook(t, srv.URL, 100*time.Millisecond).Send(context.Background(), sample)
	wantRetryable(t, err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want it to wrap context.DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Send took %s, want it bounded by the 100ms Timeout", elapsed)
	}
}

func TestWebhook_ClosedServerIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/sms?token=abc123"
	srv.Close()
	_, err := webhook(t, url, 0).Send(context.Background(), sample)
	wantRetryable(t, err)
	if strings.Contains(err.Error(), "abc123") {
		t.Errorf("err %q shows the URL's token", err)
	}
}
