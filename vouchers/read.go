package vouchers

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"time"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/expenditures"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/store"
)

// Filter selects vouchers: those of a customer, or those a partner issued;
// exactly one of CustomerID and IssuerID is set. Status narrows it.
type Filter struct {
	CustomerID int64
	IssuerID   int64
	Status     *Status
}

// visibleSQL is the condition under which the caller sees voucher b (its
// issuer joined as i): the issuing partner and those above it, and the
// customer itself — not a later partner of a customer that moved away.
func visibleSQL(sc accounts.Scope) (string, []any) {
	q, args := sc.SQL("i.path")
	if sc.All() {
		return q, args
	}
	return "(" + q + " OR b.customer_id = ?)", append(args, sc.Principal().AccountID)
}

// fromVouchers joins a voucher b with its issuer i, for visibleSQL.
const fromVouchers = "vouchers b JOIN accounts i ON i.id = b.issuer_id"

// where returns the condition selecting f's vouchers (aliased b, joined
// with their issuer i) that the caller sees; the customer or partner
// outside its scope is NOT_FOUND.
func (s *Service) where(ctx context.Context, f Filter) (string, []any, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return "", nil, err
	}
	// An account outside the scope is NOT_FOUND before anything else.
	for _, id := range []int64{f.CustomerID, f.IssuerID} {
		if id == 0 {
			continue
		}
		if _, err := accounts.GetInScope(s.st.DB.WithContext(ctx), sc, id); err != nil {
			return "", nil, err
		}
	}
	if (f.CustomerID == 0) == (f.IssuerID == 0) {
		return "", nil, apperr.Invalid("customerId", "give either customerId or partnerId")
	}
	q, args := visibleSQL(sc)
	if f.CustomerID != 0 {
		q, args = "b.customer_id = ? AND "+q, append([]any{f.CustomerID}, args...)
	} else {
		q, args = "b.issuer_id = ? AND "+q, append([]any{f.IssuerID}, args...)
	}
	if f.Status != nil {
		switch *f.Status {
		case StatusIssued, StatusPartiallyUsed, StatusUsed, StatusExpired, StatusCancelled:
		default:
			return "", nil, apperr.Invalid("status", "unknown voucher status %q", *f.Status)
		}
		q, args = q+" AND b.status = ?", append(args, string(*f.Status))
	}
	return q, args, nil
}

// Vouchers returns a page of f's vouchers, newest first.
func (s *Service) Vouchers(ctx context.Context, f Filter, first int, afterID int64) (*store.Page[*Voucher], error) {
	q, args, err := s.where(ctx, f)
	if err != nil {
		return nil, err
	}
	return store.PageOf[*Voucher](s.st.DB.WithContext(ctx), fromVouchers, q, args,
		"-b.id", "b.id DESC", first, MaxPage, afterID)
}

// Voucher returns one voucher the caller sees (visibleSQL), else
// NOT_FOUND.
func (s *Service) Voucher(ctx context.Context, id int64) (*Voucher, error) {
	m, err := s.VouchersByID(ctx, []int64{id})
	if err != nil {
		return nil, err
	}
	if m[id] == nil {
		return nil, apperr.NotFoundf("voucher not found")
	}
	return m[id], nil
}

// RedemptionFilter selects redemptions: of one voucher or of one customer
// (exactly one is set), in the months From..To (Beijing time) when given.
type RedemptionFilter struct {
	VoucherID  int64
	CustomerID int64
	From, To   *models.Month
}

// Redemptions returns a page of redemptions, newest first, with the
// external IDs of their records.
func (s *Service) Redemptions(ctx context.Context, f RedemptionFilter, first int, afterID int64) (*store.Page[*Redemption], error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	// What the caller does not see is NOT_FOUND before anything else.
	if f.VoucherID != 0 {
		if _, err := s.Voucher(ctx, f.VoucherID); err != nil {
			return nil, err
		}
	}
	if f.CustomerID != 0 {
		if _, err := accounts.GetInScope(s.st.DB.WithContext(ctx), sc, f.CustomerID); err != nil {
			return nil, err
		}
	}
	if (f.VoucherID == 0) == (f.CustomerID == 0) {
		return nil, apperr.Invalid("voucherId", "give either voucherId or customerId")
	}
	var where string
	var args []any
	if f.VoucherID != 0 {
		where, args = "b.voucher_id = ?", []any{f.VoucherID}
	} else {
		q, qa := visibleSQL(sc)
		where, args = "b.customer_id = ? AND "+q, append([]any{f.CustomerID}, qa...)
	}
	if f.From != nil && f.To != nil && f.To.Key() < f.From.Key() {
		return nil, apperr.Invalid("period", "the period ends before it starts")
	}
	if f.From != nil {
		where, args = where+" AND b.month >= ?", append(args, f.From.Key())
	}
	if f.To != nil {
		where, args = where+" AND b.month <= ?", append(args, f.To.Key())
	}
	return store.PageOf[*Redemption](s.st.DB.WithContext(ctx), "(SELECT r.*, e.external_id FROM voucher_redemptions r JOIN expenditures e ON e.id = r.expenditure_id AND e.month = r.month) b JOIN accounts i ON i.id = b.issuer_id",
		where, args, "-b.id", "b.id DESC", first, MaxPage, afterID)
}

// IssuanceFilter selects issues: those of partner PartnerID and of its
// second-level resellers (so a distributor sees what awaits its approval),
// narrowed by Status.
type IssuanceFilter struct {
	PartnerID int64
	Status    *IssuanceStatus
}

// Issuances returns a page of issues, newest first.
func (s *Service) Issuances(ctx context.Context, f IssuanceFilter, first int, afterID int64) (*store.Page[*Issuance], error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	db := s.st.DB.WithContext(ctx)
	a, err := accounts.GetInScope(db, sc, f.PartnerID)
	if err != nil {
		return nil, err
	}
	where, args := "(a.id = ? OR a.parent_id = ?)", []any{a.ID, a.ID}
	q, qa := sc.SQL("a.path")
	where, args = where+" AND "+q, append(args, qa...)
	if f.Status != nil {
		where, args = where+" AND b.status = ?", append(args, string(*f.Status))
	}
	return store.PageOf[*Issuance](db, "voucher_issuances b JOIN accounts a ON a.id = b.partner_id", where, args, "-b.id", "b.id DESC", first, MaxPage, afterID)
}

// Issuance returns one issue whose partner is in the caller's scope.
func (s *Service) Issuance(ctx context.Context, id int64) (*Issuance, error) {
	m, err := s.IssuancesByID(ctx, []int64{id})
	if err != nil {
		return nil, err
	}
	if m[id] == nil {
		return nil, apperr.NotFoundf("voucher issuance not found")
	}
	return m[id], nil
}

// Export is a CSV export of vouchers, checked and ready to write.
type Export struct {
	s     *Service
	where string
	args  []any
	name  string
}

// PrepareExport checks f as Vouchers does and returns the export to write.
func (s *Service) PrepareExport(ctx context.Context, f Filter) (*Export, error) {
	q, args, err := s.where(ctx, f)
	if err != nil {
		return nil, err
	}
	name := "vouchers-" + ids.Encode(accounts.TypeAccount, f.CustomerID+f.IssuerID) + ".csv"
	return &Export{s: s, where: q, args: args, name: name}, nil
}

// Filename is the download name.
func (e *Export) Filename() string { return e.name }

// WriteCSV writes one row per voucher, newest first, streamed from a cursor.
func (e *Export) WriteCSV(ctx context.Context, w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"voucher_id", "template_id", "template", "issuer_id", "customer_id", "customer_name", "status",
		"face_value", "used", "remaining", "returned", "product_scope", "product_codes", "billing_modes",
		"effective_at", "expires_at", "issued_at", "closed_at", "close_reason"}); err != nil {
		return err
	}
	rows, err := e.s.st.DB.WithContext(ctx).Raw(`SELECT b.*, t.name AS template_name, c.name AS customer_name
		FROM `+fromVouchers+` JOIN accounts c ON c.id = b.customer_id JOIN voucher_templates t ON t.id = b.template_id
		WHERE `+e.where+` ORDER BY b.id DESC`, e.args...).Rows()
	if err != nil {
		return fmt.Errorf("read vouchers: %w", err)
	}
	defer rows.Close()
	db := e.s.st.DB.WithContext(ctx)
	for rows.Next() {
		var v struct {
			Voucher
			TemplateName string
			CustomerName string
		}
		if err := db.ScanRows(rows, &v); err != nil {
			return fmt.Errorf("read vouchers: %w", err)
		}
		closed, reason := "", ""
		if v.ClosedAt != nil {
			closed = v.ClosedAt.UTC().Format(time.RFC3339)
		}
		if v.CloseReason != nil {
			reason = *v.CloseReason
		}
		codes := ""
		for i, c := range v.ProductCodes {
			if i > 0 {
				codes += " "
			}
			codes += c
		}
		if err := cw.Write([]string{v.GlobalID(), ids.Encode(TypeTemplate, v.TemplateID), expenditures.SafeCell(v.TemplateName),
			ids.Encode(accounts.TypeAccount, v.IssuerID), ids.Encode(accounts.TypeAccount, v.CustomerID), expenditures.SafeCell(v.CustomerName),
			string(v.Status), v.FaceValue.String(), v.Used().String(), v.Remaining.String(), v.Returned.String(),
			string(v.ProductScope), expenditures.SafeCell(codes), string(v.BillingModes),
			v.EffectiveAt.UTC().Format(time.RFC3339), v.ExpiresAt.UTC().Format(time.RFC3339), v.IssuedAt.UTC().Format(time.RFC3339),
			closed, expenditures.SafeCell(reason)}); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read vouchers: %w", err)
	}
	cw.Flush()
	return cw.Error()
}
