package email

import (
	"errors"
	"strconv"
	"strings"

	"github.com/wneessen/go-mail"
)

// PermanentError is a failure that retrying the same message cannot mend:
// the server refused it with a 5xx reply (bad recipient, message refused),
// or the message itself is invalid. Response is the server's reply
// ("550 5.1.1 no such user"), empty when the message never reached a server.
type PermanentError struct {
	Err      error
	Response string
}

// Error reports the failure, including the server's reply.
func (e *PermanentError) Error() string {
	return "permanent failure: " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err says the message will never be accepted:
// a 5xx SMTP reply to the message, or an invalid message. Everything else —
// 4xx replies, refused or dropped connections, timeouts, a cancelled context,
// failures to greet or authenticate (the server's or our configuration's
// fault, not this message's) — is retryable.
func IsPermanent(err error) bool {
	if _, ok := errors.AsType[*PermanentError](err); ok {
		return true
	}
	se, ok := errors.AsType[*mail.SendError](err)
	return ok && se.ErrorCode() >= 500 && se.ErrorCode() < 600
}

// classify turns a 5xx go-mail SendError into a PermanentError and leaves
// every other error retryable.
func classify(err error) error {
	se, ok := errors.AsType[*mail.SendError](err)
	if !ok {
		return err
	}
	if code := se.ErrorCode(); code >= 500 && code < 600 {
		return &PermanentError{Err: err, Response: serverReply(se)}
	}
	return err
}

// serverReply extracts the server's reply ("550 5.1.1 no such user") from a
// SendError. go-mail keeps the reply only inside the error text ("sending
// SMTP RCPT TO command: 550 ..., affected recipient(s): ..."), where Go's
// textproto quotes the message part (550 "5.1.1 no such user").
func serverReply(se *mail.SendError) string {
	text := se.Error()
	code := strconv.Itoa(se.ErrorCode())
	i := strings.Index(text, code+" ")
	if i < 0 {
		return text
	}
	rest := text[i+len(code)+1:]
	if quoted, err := strconv.QuotedPrefix(rest); err == nil {
		if msg, err := strconv.Unquote(quoted); err == nil {
			return code + " " + msg
		}
	}
	if j := strings.Index(rest, ", affected "); j >= 0 {
		rest = rest[:j]
	}
	return code + " " + rest
}
