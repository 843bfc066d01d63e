// Package apperr holds the one application error type of partnerd: a machine
// code from the public contract and a message a person understands.
// Domain packages return these; the GraphQL error presenter maps the code to
// extensions.code. Anything that is not an *Error is INTERNAL and its details
// stay in the log.
package apperr

import (
	"errors"
	"fmt"
	"strings"
)

// Code is one of the error codes of CONTRACT.graphqls.
type Code string

// The codes of the public contract.
const (
	Unauthenticated    Code = "UNAUTHENTICATED"
	Forbidden          Code = "FORBIDDEN"
	NotFound           Code = "NOT_FOUND"
	Validation         Code = "VALIDATION"
	Conflict           Code = "CONFLICT"
	PreconditionFailed Code = "PRECONDITION_FAILED"
	Internal           Code = "INTERNAL"
)

// RateLimited refuses a caller over its request rate (HTTP 429, with
// Retry-After); added to the contract's codes.
const RateLimited Code = "RATE_LIMITED"

// Error is an application error: a code and a human message safe to show to
// the caller. Field optionally names the input the message is about.
type Error struct {
	Code    Code
	Message string
	Field   string
}

// Error implements error.
func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// New returns an application error with a formatted message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns a VALIDATION error about the named input field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: Validation, Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFoundf returns a NOT_FOUND error. Its message must never hint whether the
// object exists outside the caller's scope.
func NotFoundf(format string, args ...any) *Error { return New(NotFound, format, args...) }

// Forbiddenf returns a FORBIDDEN error: the target is in scope but the caller's
// roles do not allow the operation.
func Forbiddenf(format string, args ...any) *Error { return New(Forbidden, format, args...) }

// Conflictf returns a CONFLICT error.
func Conflictf(format string, args ...any) *Error { return New(Conflict, format, args...) }

// Preconditionf returns a PRECONDITION_FAILED error.
func Preconditionf(format string, args ...any) *Error {
	return New(PreconditionFailed, format, args...)
}

// CodeOf returns the code of the first *Error in err's chain, or INTERNAL.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// As returns the first *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Is reports whether err carries the given code.
func Is(err error, code Code) bool { return CodeOf(err) == code }

// Clip shortens user input quoted in a message to 40 bytes, without cutting a
// character in two, so an error never echoes a huge or broken value.
func Clip(s string) string {
	if len(s) > 40 {
		return strings.ToValidUTF8(s[:40], "") + "…"
	}
	return s
}
