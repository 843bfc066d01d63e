package server

import (
	"io"
	"log/slog"
	"net/http"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/ids"
	"partnerd/vouchers"
)

// vouchersExportPath is the vouchers' CSV download.
const vouchersExportPath = "/v1/vouchers/export"

// vouchersRoutes adds the vouchers' download to mux (nothing without the
// service), as billingRoutes does its own: bearer token (401 without), the
// scope rules of the vouchers query (404 outside), 400 for bad input before
// any byte of the file, CSV streamed from a database cursor.
//
//   - GET /v1/vouchers/export?customerId=|partnerId=[&status=]: the
//     vouchers of a customer, or those a partner issued, newest first.
func vouchersRoutes(mux *http.ServeMux, svc *vouchers.Service, log *slog.Logger) {
	if svc == nil {
		return
	}
	mux.Handle("GET "+vouchersExportPath, authenticated(log, func(w http.ResponseWriter, r *http.Request) error {
		f, err := voucherFilter(r)
		if err != nil {
			return err
		}
		exp, err := svc.PrepareExport(r.Context(), f)
		if err != nil {
			return err
		}
		return streamCSV(w, exp.Filename(), func(out io.Writer) error { return exp.WriteCSV(r.Context(), out) })
	}))
}

// voucherFilter reads the filter of the vouchers export; the domain judges
// it (an account the caller does not see is NOT_FOUND before the either/or
// of customerId and partnerId).
func voucherFilter(r *http.Request) (vouchers.Filter, error) {
	var f vouchers.Filter
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "customerId", "partnerId", "status":
		default:
			return f, apperr.Invalid(k, "unknown parameter %q: use customerId or partnerId, and status", apperr.Clip(k))
		}
	}
	var err error
	if s := q.Get("customerId"); s != "" {
		if f.CustomerID, err = ids.Decode(s, accounts.TypeAccount); err != nil {
			return f, err
		}
	}
	if s := q.Get("partnerId"); s != "" {
		if f.IssuerID, err = ids.Decode(s, accounts.TypeAccount); err != nil {
			return f, err
		}
	}
	if s := q.Get("status"); s != "" {
		st := vouchers.Status(s)
		f.Status = &st
	}
	return f, nil
}
