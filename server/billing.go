package server

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/billing"
	"partnerd/billing/invoice"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/resolvers"
)

// The billing downloads.
const (
	partnerBillLinesPath    = "/v1/partner-bills/{id}/lines.csv"
	customerBillsExportPath = "/v1/customer-bills/export"
	marginsExportPath       = "/v1/margins/export"
	invoicePath             = "/v1/customer-bills/{id}/{file}"
)

// billingRoutes adds the billing downloads to mux. Each authenticates with
// the bearer token (401 without), answers through the same scope rules as
// the GraphQL queries (404 outside), refuses bad input with 400 before any
// byte of the file, and streams CSV from a database cursor.
//
//   - GET /v1/partner-bills/{id}/lines.csv: a partner bill's lines.
//   - GET /v1/customer-bills/export?partnerId=&customerId=&month=YYYY-MM:
//     the lines of the customer bills the caller may see.
//   - GET /v1/customer-bills/{id}/invoice.html or invoice.pdf?locale=en-US|zh-CN:
//     a customer bill's invoice.
//   - GET /v1/margins/export?partnerId=&month=YYYY-MM: the margin report.
func billingRoutes(mux *http.ServeMux, svc *billing.Service, log *slog.Logger) {
	mux.Handle("GET "+partnerBillLinesPath, authenticated(log, func(w http.ResponseWriter, r *http.Request) error {
		id, err := ids.Decode(r.PathValue("id"), billing.TypePartnerBill)
		if err != nil {
			return err
		}
		b, err := svc.PartnerBill(r.Context(), id)
		if err != nil {
			return err
		}
		return streamCSV(w, billing.BillFilename(b), func(out io.Writer) error { return svc.WriteBillCSV(r.Context(), b, out) })
	}))
	mux.Handle("GET "+customerBillsExportPath, authenticated(log, func(w http.ResponseWriter, r *http.Request) error {
		f, err := customerBillFilter(r)
		if err != nil {
			return err
		}
		exp, err := svc.PrepareCustomerBillsExport(r.Context(), f)
		if err != nil {
			return err
		}
		return streamCSV(w, exp.Filename(), func(out io.Writer) error { return exp.WriteCSV(r.Context(), out) })
	}))
	mux.Handle("GET "+marginsExportPath, authenticated(log, func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		for k := range q {
			if k != "partnerId" && k != "month" {
				return apperr.Invalid(k, "unknown parameter %q: use partnerId and month", apperr.Clip(k))
			}
		}
		var partner int64
		if s := q.Get("partnerId"); s != "" {
			var err error
			if partner, err = ids.Decode(s, resolvers.TypeAccount); err != nil {
				return err
			}
		}
		m, err := models.ParseMonth(q.Get("month"))
		if err != nil {
			return err
		}
		exp, err := svc.PrepareMarginExport(r.Context(), partner, m)
		if err != nil {
			return err
		}
		return streamCSV(w, exp.Filename(), func(out io.Writer) error { return exp.WriteCSV(r.Context(), out) })
	}))
	mux.Handle("GET "+invoicePath, authenticated(log, func(w http.ResponseWriter, r *http.Request) error {
		render, ctype := invoice.HTML, "text/html; charset=utf-8"
		switch r.PathValue("file") {
		case "invoice.html":
		case "invoice.pdf":
			render, ctype = invoice.PDF, "application/pdf"
		default:
			return apperr.NotFoundf("no such file: invoice.html or invoice.pdf")
		}
		id, err := ids.Decode(r.PathValue("id"), billing.TypeCustomerBill)
		if err != nil {
			return err
		}
		inv, err := svc.Invoice(r.Context(), id, r.URL.Query().Get("locale"))
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := render(&buf, *inv); err != nil {
			return err
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if ctype == "application/pdf" {
			w.Header().Set("Content-Disposition", `attachment; filename="`+inv.Number+`.pdf"`)
		}
		_, _ = w.Write(buf.Bytes())
		return nil
	}))
}

// authenticated runs h for an authenticated caller (else 401) and answers
// the error it returns before writing anything.
func authenticated(log *slog.Logger, h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := accounts.PrincipalFrom(r.Context()); !ok {
			writeError(w, http.StatusUnauthorized, apperr.Unauthenticated, accounts.ErrUnauthenticated.Message)
			return
		}
		if err := h(w, r); err != nil {
			writeExportError(w, r, log, err)
		}
	})
}

// streamCSV sets the CSV download headers and streams write's output. An
// error in the middle of the stream aborts the connection, so a cut
// download cannot look whole.
func streamCSV(w http.ResponseWriter, filename string, write func(io.Writer) error) error {
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	cw := &countingWriter{w: w}
	if err := write(cw); err != nil {
		if cw.n == 0 {
			h.Del("Content-Disposition")
			return err
		}
		panic(http.ErrAbortHandler)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// customerBillFilter reads the filter of the customer bills export.
func customerBillFilter(r *http.Request) (billing.CustomerBillFilter, error) {
	var f billing.CustomerBillFilter
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "partnerId", "customerId", "month":
		default:
			return f, apperr.Invalid(k, "unknown parameter %q: use partnerId, customerId, month", apperr.Clip(k))
		}
	}
	var err error
	if s := q.Get("partnerId"); s != "" {
		if f.PartnerID, err = ids.Decode(s, resolvers.TypeAccount); err != nil {
			return f, err
		}
	}
	if s := q.Get("customerId"); s != "" {
		if f.CustomerID, err = ids.Decode(s, resolvers.TypeAccount); err != nil {
			return f, err
		}
	}
	if s := q.Get("month"); s != "" {
		m, err := models.ParseMonth(s)
		if err != nil {
			return f, err
		}
		f.Month = &m
	}
	return f, nil
}
