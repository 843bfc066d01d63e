package server

import (
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/expenditures"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/resolvers"
	"partnerd/store"
)

// expenditureExportPath is the CSV export of expenditure records and
// summaries.
const expenditureExportPath = "/v1/expenditures/export"

// exportIdleTimeout cuts off a client that stops reading an export: its
// request holds a database transaction (a snapshot and a cursor) open.
const exportIdleTimeout = 2 * time.Minute

// exportParams are the query parameters of the export; any other is refused
// so a misspelt filter does not silently export everything.
var exportParams = map[string]bool{"kind": true, "groupBy": true, "from": true, "to": true,
	"partnerId": true, "customerId": true, "productCode": true, "tag": true}

// ExportHandler serves GET (and HEAD) /v1/expenditures/export: the records
// (kind=records, the default) or a summary (kind=summary&groupBy=CUSTOMER|
// PRODUCT|DAY|MONTH) of the caller's scope as a CSV download, with the
// filters of the GraphQL queries: from and to (YYYY-MM, inclusive, both or
// neither; default the current month), partnerId, customerId, productCode
// and tag=key=value. The same rules as expenditureSummary and expenditures
// decide what is in it (expenditures.Service.PrepareExport).
//
// The caller authenticates with its bearer token (401 without). Bad input —
// an unknown or repeated parameter, a malformed month, ID or tag, a period
// longer than 24 months — is 400 VALIDATION, an account outside the scope
// 404 NOT_FOUND, both in the GraphQL-shaped error body of the other REST
// routes and before any CSV is written. Then the answer is 200 text/csv
// streamed from a database cursor (expenditures.Export.WriteCSV) as it is
// read; a client that reads nothing for two minutes is cut off. Should the
// database fail in the middle, the connection is aborted so the download
// ends incomplete rather than looking whole.
func ExportHandler(svc *expenditures.Service, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if _, ok := accounts.PrincipalFrom(ctx); !ok {
			writeError(w, http.StatusUnauthorized, apperr.Unauthenticated, accounts.ErrUnauthenticated.Message)
			return
		}
		kind, g, f, err := exportRequest(r.URL.Query())
		if err != nil {
			writeExportError(w, r, log, err)
			return
		}
		exp, err := svc.PrepareExport(ctx, kind, g, f)
		if err != nil {
			writeExportError(w, r, log, err)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", `attachment; filename="`+exp.Filename()+`"`)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		if r.Method == http.MethodHead {
			return
		}
		out := &exportWriter{w: w, rc: http.NewResponseController(w), idle: exportIdleTimeout}
		defer out.rc.SetWriteDeadline(time.Time{}) //nolint:errcheck // the connection may serve another request
		err = exp.WriteCSV(ctx, out)
		if err == nil {
			return
		}
		if !out.wrote {
			h.Del("Content-Disposition")
			writeExportError(w, r, log, err)
			return
		}
		if ctx.Err() == nil {
			log.ErrorContext(ctx, "expenditure export failed after it started", "err", err, "request_id", store.RequestID(ctx))
		}
		panic(http.ErrAbortHandler)
	})
}

// exportWriter writes an export to the response, pushing the connection's
// write deadline forward before each write, and flushes on request.
type exportWriter struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	idle  time.Duration
	wrote bool
}

func (e *exportWriter) Write(p []byte) (int, error) {
	e.wrote = true
	_ = e.rc.SetWriteDeadline(time.Now().Add(e.idle)) // not every transport supports it
	return e.w.Write(p)
}

// Flush sends what was written so far to the client.
func (e *exportWriter) Flush() error {
	if err := e.rc.Flush(); err != nil && err != http.ErrNotSupported {
		return err
	}
	return nil
}

// exportRequest reads the query parameters of an export.
func exportRequest(q url.Values) (expenditures.ExportKind, expenditures.GroupBy, expenditures.Filter, error) {
	var f expenditures.Filter
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !exportParams[k] {
			return "", "", f, apperr.Invalid(k, "unknown parameter %q: the export takes kind, groupBy, from, to, partnerId, customerId, productCode and tag", apperr.Clip(k))
		}
		if len(q[k]) > 1 {
			return "", "", f, apperr.Invalid(k, "%s is given more than once", k)
		}
	}
	kind := expenditures.ExportKind(strings.ToLower(q.Get("kind")))
	if kind == "" {
		kind = expenditures.ExportRecords
	}
	var g expenditures.GroupBy
	if s := q.Get("groupBy"); s != "" {
		var err error
		if g, err = expenditures.ParseGroupBy("groupBy", strings.ToUpper(s)); err != nil {
			return "", "", f, err
		}
	}
	from, to := q.Get("from"), q.Get("to")
	if (from == "") != (to == "") {
		return "", "", f, apperr.Invalid("period", "give both from and to (YYYY-MM), or neither for the current month")
	}
	if from != "" {
		var p expenditures.Period
		var err error
		if p.From, err = models.ParseMonth(from); err != nil {
			return "", "", f, apperr.Invalid("from", "from: %s", errMessage(err))
		}
		if p.To, err = models.ParseMonth(to); err != nil {
			return "", "", f, apperr.Invalid("to", "to: %s", errMessage(err))
		}
		f.Period = &p
	}
	var err error
	if s := q.Get("partnerId"); s != "" {
		if f.PartnerID, err = ids.Decode(s, resolvers.TypeAccount); err != nil {
			return "", "", f, err
		}
	}
	if s := q.Get("customerId"); s != "" {
		if f.CustomerID, err = ids.Decode(s, resolvers.TypeAccount); err != nil {
			return "", "", f, err
		}
	}
	f.ProductCode = q.Get("productCode")
	if s, ok := q["tag"]; ok {
		key, value, found := strings.Cut(s[0], "=")
		if !found {
			return "", "", f, apperr.Invalid("tag", "write the tag as tag=key=value")
		}
		f.Tag = &accounts.Tag{Key: key, Value: value}
	}
	return kind, g, f, nil
}

// writeExportError answers an export that failed before its first byte:
// application errors with their status (as the other REST routes), anything
// else logged and answered "internal error".
func writeExportError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	ctx := r.Context()
	if ae, ok := apperr.As(err); ok && ae.Code != apperr.Internal || ctx.Err() != nil || store.IsUnavailable(err) || store.IsRetryable(err) {
		writeIngestError(w, r, log, err)
		return
	}
	log.ErrorContext(ctx, "expenditure export failed", "err", err, "request_id", store.RequestID(ctx))
	writeError(w, http.StatusInternalServerError, apperr.Internal, "internal error")
}

// errMessage is the message of an application error (its text otherwise).
func errMessage(err error) string {
	if ae, ok := apperr.As(err); ok {
		return ae.Message
	}
	return err.Error()
}
