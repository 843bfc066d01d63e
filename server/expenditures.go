package server

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/spend"
	"partnerd/store"
)

// ndjsonTypes are the media types read as one JSON object per line.
var ndjsonTypes = map[string]bool{
	"application/x-ndjson":     true,
	"application/ndjson":       true,
	"application/jsonl":        true,
	"application/x-jsonlines":  true,
	"application/json-seq":     true,
	"application/jsonlines":    true,
	"application/x-json-lines": true,
}

// ingestIdleTimeout cuts off a client that stops sending in the middle of a
// body: its request holds a database transaction open until then.
const ingestIdleTimeout = 2 * time.Minute

// idleReader pushes the connection's read deadline forward before each read,
// so a long upload may last as long as it keeps moving.
type idleReader struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
}

func (ir *idleReader) Read(p []byte) (int, error) {
	_ = ir.rc.SetReadDeadline(time.Now().Add(ir.idle)) // not every transport supports it
	return ir.r.Read(p)
}

// ingestResponse is the body of a successful POST /v1/expenditures.
type ingestResponse struct {
	Accepted   int                 `json:"accepted"`
	Duplicates int                 `json:"duplicates"`
	Conflicts  int                 `json:"conflicts"`
	Rejected   int                 `json:"rejected"`
	Errors     []ingestRecordError `json:"errors"`
	AsOf       *string             `json:"asOf"`
}

type ingestRecordError struct {
	Index      int    `json:"index"`
	ExternalID string `json:"externalId"`
	Reason     string `json:"reason"`
}

// ExpendituresHandler serves POST /v1/expenditures, the bulk way in for the
// cloud's billing pipeline (issue 5, point 5): the body is streamed into
// spend.Service.Ingest, so a request may carry millions of records without
// the server holding them. Content-Type chooses the format:
// application/x-ndjson (also application/jsonl and application/json-seq) for
// one JSON object per line, text/csv for CSV with the header
// spend.CSVHeader; anything else is 415. Content-Encoding: gzip is accepted.
//
// The caller must be authenticated (401 otherwise) as a platform user with
// ADMIN or FINANCE (403). A malformed record refuses the whole request with
// 400 naming the line, and nothing is stored. A serialization failure or
// deadlock against a concurrent request answers 503 with Retry-After:
// sending the same body again is safe, since records are idempotent by
// externalId. Success is 200 with the counts, the per-record errors (at most
// 1000) and asOf.
//
// The route must not be under the server's JSON body cap: its bodies are as
// large as the pipeline's batches. A client that sends nothing for two
// minutes in the middle of a body is cut off and its request rolled back.
func ExpendituresHandler(svc *spend.Service, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, apperr.Validation, "use POST to send expenditure records")
			return
		}
		if _, ok := accounts.PrincipalFrom(ctx); !ok {
			writeError(w, http.StatusUnauthorized, apperr.Unauthenticated, accounts.ErrUnauthenticated.Message)
			return
		}
		body := io.Reader(&idleReader{r: r.Body, rc: http.NewResponseController(w), idle: ingestIdleTimeout})
		switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
		case "", "identity":
		case "gzip", "x-gzip":
			gz, err := gzip.NewReader(body)
			if err != nil {
				writeError(w, http.StatusBadRequest, apperr.Validation, "the body is not valid gzip")
				return
			}
			defer gz.Close()
			body = gz
		default:
			writeError(w, http.StatusUnsupportedMediaType, apperr.Validation, "Content-Encoding "+enc+" is not supported: send the body plain or gzip")
			return
		}

		mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		var src spend.Source
		switch {
		case ndjsonTypes[mediaType]:
			src = spend.NewNDJSONSource(body)
		case mediaType == "text/csv":
			var err error
			if src, err = spend.NewCSVSource(body); err != nil {
				writeIngestError(w, r, log, err)
				return
			}
		default:
			writeError(w, http.StatusUnsupportedMediaType, apperr.Validation,
				"send expenditure records as application/x-ndjson (one JSON object per line) or text/csv (header "+spend.CSVHeader+")")
			return
		}

		res, err := svc.Ingest(ctx, src)
		if err != nil {
			writeIngestError(w, r, log, err)
			return
		}
		out := ingestResponse{Accepted: res.Accepted, Duplicates: res.Duplicates, Conflicts: res.Conflicts,
			Rejected: res.Rejected, Errors: make([]ingestRecordError, 0, len(res.Errors))}
		for _, e := range res.Errors {
			out.Errors = append(out.Errors, ingestRecordError{Index: e.Index, ExternalID: e.ExternalID, Reason: e.Reason})
		}
		if res.AsOf != nil {
			s := res.AsOf.UTC().Format(time.RFC3339Nano)
			out.AsOf = &s
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(out)
	})
}

// writeIngestError maps an ingestion failure to its status; anything that
// is not an application error is logged and answered "internal error".
func writeIngestError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	ctx := r.Context()
	if ae, ok := apperr.As(err); ok {
		status := http.StatusInternalServerError
		switch ae.Code {
		case apperr.Validation:
			status = http.StatusBadRequest
		case apperr.Unauthenticated:
			status = http.StatusUnauthorized
		case apperr.Forbidden:
			status = http.StatusForbidden
		case apperr.NotFound:
			status = http.StatusNotFound
		case apperr.Conflict:
			status = http.StatusConflict
		case apperr.PreconditionFailed:
			status = http.StatusPreconditionFailed
		}
		if status != http.StatusInternalServerError {
			writeError(w, status, ae.Code, ae.Message)
			return
		}
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, apperr.Validation, "the request body is larger than "+byteSize(tooLarge.Limit))
		return
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader):
		writeError(w, http.StatusBadRequest, apperr.Validation, "the gzip body is corrupt")
		return
	case errors.As(err, new(*spend.BodyError)) && ctx.Err() == nil:
		// The body could not be read (truncated, cut, too slow): the
		// sender's to resend, never "the database is unavailable".
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			writeError(w, http.StatusRequestTimeout, apperr.Validation, "the request body arrived too slowly: "+apperr.Clip(err.Error()))
			return
		}
		writeError(w, http.StatusBadRequest, apperr.Validation, "the request body could not be read: "+apperr.Clip(err.Error()))
		return
	case store.IsRetryable(err):
		log.WarnContext(ctx, "retryable database conflict", "err", err, "request_id", store.RequestID(ctx), "path", r.URL.Path)
		writeUnavailable(w, "the request collided with a concurrent one; send it again (records are idempotent by externalId)")
		return
	case ctx.Err() == context.Canceled:
		// The client went away; nobody reads the answer.
		log.InfoContext(ctx, "request cancelled", "err", err, "request_id", store.RequestID(ctx), "path", r.URL.Path)
		return
	case store.IsUnavailable(err):
		log.WarnContext(ctx, "database unavailable", "err", err, "request_id", store.RequestID(ctx), "path", r.URL.Path)
		writeUnavailable(w, "the database is unavailable for a moment; send the request again")
		return
	}
	log.ErrorContext(ctx, "request failed", "err", err, "request_id", store.RequestID(ctx), "path", r.URL.Path)
	writeError(w, http.StatusInternalServerError, apperr.Internal, "internal error")
}
