package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"partnerd/apperr"
	"partnerd/store"
)

// gqlgen's own codes for requests refused before execution; all are the
// caller's fault, so they become VALIDATION.
var callerCodes = map[string]bool{
	"GRAPHQL_PARSE_FAILED":          true,
	"GRAPHQL_VALIDATION_FAILED":     true,
	"COMPLEXITY_LIMIT_EXCEEDED":     true,
	"PERSISTED_QUERY_NOT_FOUND":     true,
	"PERSISTED_QUERY_NOT_SUPPORTED": true,
	"UNKNOWN_OPERATION_NAME":        true,
}

// errorPresenter maps application errors to extensions.code and hides
// everything else behind INTERNAL with the request id; details go to the log
// only.
func errorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gerr := graphql.DefaultErrorPresenter(ctx, err)
		if ae, ok := apperr.As(err); ok {
			gerr.Message = ae.Message
			gerr.Extensions = map[string]any{"code": string(ae.Code)}
			if ae.Field != "" {
				gerr.Extensions["field"] = ae.Field
			}
			return gerr
		}
		var ge *gqlerror.Error
		if errors.As(err, &ge) {
			code, _ := ge.Extensions["code"].(string)
			if code == string(apperr.Validation) {
				// Already in the contract's shape (our own limits, e.g. the depth limit): keep its reason.
				return gerr
			}
			if callerCodes[code] || (code == "" && ge.Rule != "") || (code == "" && ge.Err == nil && len(ge.Path) == 0) {
				gerr.Extensions = map[string]any{"code": string(apperr.Validation)}
				if code != "" {
					gerr.Extensions["reason"] = code
				}
				// gqlgen's POST transport quotes the whole body it could not decode (up to BodyBytes).
				if rest, ok := strings.CutPrefix(gerr.Message, "json request body could not be decoded: "); ok {
					gerr.Message = "the request body could not be decoded: " + strings.SplitN(rest, " body:", 2)[0]
				}
				return gerr
			}
		}
		rid := store.RequestID(ctx)
		if store.IsUnavailable(err) || store.IsRetryable(err) {
			// A dependency down, slow or contended: the caller may send the same request again.
			log.WarnContext(ctx, "retryable error", "err", err, "request_id", rid, "path", gerr.Path.String())
			return &gqlerror.Error{
				Message:    "the service is unavailable for a moment; send the request again",
				Path:       gerr.Path,
				Locations:  gerr.Locations,
				Extensions: map[string]any{"code": string(apperr.Internal), "requestId": rid, "retryable": true},
			}
		}
		log.ErrorContext(ctx, "internal error", "err", err, "request_id", rid, "path", gerr.Path.String())
		return &gqlerror.Error{
			Message:    "internal error",
			Path:       gerr.Path,
			Locations:  gerr.Locations,
			Extensions: map[string]any{"code": string(apperr.Internal), "requestId": rid},
		}
	}
}

// recoverFunc turns a resolver panic into an INTERNAL error, logging the stack.
func recoverFunc(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in resolver", "panic", fmt.Sprint(p), "stack", string(debug.Stack()), "request_id", store.RequestID(ctx))
		return errors.New("panic in resolver")
	}
}
