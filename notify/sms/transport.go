package sms

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// maxBody bounds how much of an answer is read; summaries keep far less.
const maxBody = 64 << 10

// post makes one request bounded by timeout and returns the status and (the
// start of) the body. Any status is an answer, not an error. A transport error (timeout, refused connection) is
// returned as is, meaning retryable, and never names the URL's query, which
// may hold a token.
func post(ctx context.Context, client *http.Client, timeout time.Duration, target, contentType string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return 0, nil, fmt.Errorf("POST %s: no answer within %s: %w", where(target), timeout, err)
		}
		return 0, nil, fmt.Errorf("POST %s: %w", where(target), err)
	}
	defer resp.Body.Close()
	// The status is the answer; a body cut short only shortens the summary
	// (and, for a provider whose verdict is in the body, makes it unknown).
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	return resp.StatusCode, data, nil
}

// where names a URL without its user info and query, for errors and logs.
func where(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(bad URL)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}
