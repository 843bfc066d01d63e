package sms

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// logBuffer collects a provider's log records (debug and up) so tests can
// check what is, and is not, written.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLog() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// mustNew builds a provider or stops the test.
func mustNew(t *testing.T, cfg Config, log *slog.Logger) Provider {
	t.Helper()
	p, err := New(cfg, nil, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// wantRetryable fails unless err is a retryable (non-permanent) error.
func wantRetryable(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("err = nil, want a retryable error")
	}
	if IsPermanent(err) {
		t.Fatalf("err = %v is permanent, want retryable", err)
	}
}

// wantPermanent fails unless err is a *PermanentError.
func wantPermanent(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("err = nil, want a permanent error")
	}
	if !IsPermanent(err) {
		t.Fatalf("err = %v is retryable, want permanent", err)
	}
}

// newSlowServer returns a server that never answers in time: each handler
// holds its request until the client gives up or the test ends.
func newSlowServer(t *testing.T) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reading the body to the end lets the server notice the client
		// hanging up, which cancels r.Context().
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first
	return srv
}
