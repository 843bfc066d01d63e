package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"partnerd/apperr"
	"partnerd/store"
)

func presenterCtx() context.Context {
	ctx := store.WithRequestID(context.Background(), "req-42")
	ctx = graphql.WithResponseContext(ctx, graphql.DefaultErrorPresenter, graphql.DefaultRecover)
	return graphql.WithPathContext(ctx, graphql.NewPathWithField("account"))
}

func present(t *testing.T, err error) (*gqlerror.Error, string, string) {
	t.Helper()
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	gerr := errorPresenter(log)(presenterCtx(), err)
	out, jerr := json.Marshal(gerr)
	if jerr != nil {
		t.Fatal(jerr)
	}
	return gerr, string(out), logs.String()
}

func TestErrorPresenter_HidesInternalErrors(t *testing.T) {
	for name, err := range map[string]error{
		"plain":            errors.New("boom"),
		"wrapped":          fmt.Errorf("load account 7: %w", errors.New("boom")),
		"gqlerror wrapper": &gqlerror.Error{Message: "boom", Err: errors.New("boom"), Path: ast.Path{ast.PathName("account")}},
		"panic":            recoverFunc(slog.New(slog.DiscardHandler))(context.Background(), "boom"),
	} {
		gerr, out, logs := present(t, err)
		if gerr.Message != "internal error" {
			t.Errorf("%s: message %q, want \"internal error\"", name, gerr.Message)
		}
		if gerr.Extensions["code"] != "INTERNAL" || gerr.Extensions["requestId"] != "req-42" || len(gerr.Extensions) != 2 {
			t.Errorf("%s: extensions %v, want code INTERNAL and requestId req-42 only", name, gerr.Extensions)
		}
		if strings.Contains(out, "boom") || strings.Contains(out, "panic") {
			t.Errorf("%s: the response shows the cause: %s", name, out)
		}
		if name != "panic" && (!strings.Contains(logs, "boom") || !strings.Contains(logs, "req-42")) {
			t.Errorf("%s: the log lacks the cause or the request id: %s", name, logs)
		}
		if gerr.Path.String() != "account" {
			t.Errorf("%s: path %q, want account", name, gerr.Path.String())
		}
	}
}

func TestErrorPresenter_PassesApplicationErrorsThrough(t *testing.T) {
	for name, c := range map[string]struct {
		err   error
		code  string
		msg   string
		field string
	}{
		"not found":         {apperr.NotFoundf("account not found"), "NOT_FOUND", "account not found", ""},
		"wrapped":           {fmt.Errorf("create: %w", apperr.Conflictf("taken")), "CONFLICT", "taken", ""},
		"with field":        {apperr.Invalid("email", "%q is not an email", "x"), "VALIDATION", `"x" is not an email`, "email"},
		"forbidden":         {apperr.Forbiddenf("no"), "FORBIDDEN", "no", ""},
		"precondition":      {apperr.Preconditionf("insufficient allocatable credit"), "PRECONDITION_FAILED", "insufficient allocatable credit", ""},
		"unauthenticated":   {apperr.New(apperr.Unauthenticated, "who are you"), "UNAUTHENTICATED", "who are you", ""},
		"inside a gqlerror": {&gqlerror.Error{Message: "wrapped", Err: apperr.NotFoundf("user not found")}, "NOT_FOUND", "user not found", ""},
	} {
		gerr, _, logs := present(t, c.err)
		if gerr.Message != c.msg || gerr.Extensions["code"] != c.code {
			t.Errorf("%s: %q %v, want %q code %s", name, gerr.Message, gerr.Extensions, c.msg, c.code)
		}
		if f, _ := gerr.Extensions["field"].(string); f != c.field {
			t.Errorf("%s: field %q, want %q", name, f, c.field)
		}
		if _, ok := gerr.Extensions["requestId"]; ok {
			t.Errorf("%s: an application error carries a requestId", name)
		}
		if logs != "" {
			t.Errorf("%s: an application error was logged as internal: %s", name, logs)
		}
	}
}

func TestErrorPresenter_RequestsRefusedBeforeExecutionAreValidation(t *testing.T) {
	for name, err := range map[string]*gqlerror.Error{
		"parse":      {Message: "Expected Name", Extensions: map[string]any{"code": "GRAPHQL_PARSE_FAILED"}},
		"validation": {Message: "Cannot query field", Rule: "FieldsOnCorrectType"},
		"complexity": {Message: "too complex", Extensions: map[string]any{"code": "COMPLEXITY_LIMIT_EXCEEDED"}},
		"depth":      {Message: "too deep", Extensions: map[string]any{"code": "VALIDATION", "reason": "DEPTH_LIMIT_EXCEEDED"}},
		"no path":    {Message: "json body could not be decoded"},
	} {
		gerr, _, logs := present(t, err)
		if gerr.Extensions["code"] != "VALIDATION" || gerr.Message != err.Message {
			t.Errorf("%s: %q %v, want VALIDATION with the message kept", name, gerr.Message, gerr.Extensions)
		}
		if logs != "" {
			t.Errorf("%s: logged as internal: %s", name, logs)
		}
	}
	gerr, _, _ := present(t, &gqlerror.Error{Message: "x", Extensions: map[string]any{"code": "COMPLEXITY_LIMIT_EXCEEDED"}})
	if gerr.Extensions["reason"] != "COMPLEXITY_LIMIT_EXCEEDED" {
		t.Errorf("complexity: reason %v", gerr.Extensions["reason"])
	}
	gerr, _, _ = present(t, &gqlerror.Error{Message: "too deep", Extensions: map[string]any{"code": "VALIDATION", "reason": "DEPTH_LIMIT_EXCEEDED"}})
	if gerr.Extensions["reason"] != "DEPTH_LIMIT_EXCEEDED" {
		t.Errorf("depth: reason %v", gerr.Extensions["reason"])
	}
}
