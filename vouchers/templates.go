package vouchers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"
	"gorm.io/gorm"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/store"
)

// Template statuses.
const (
	TemplateActive  = "ACTIVE"
	TemplateRetired = "RETIRED"
)

// Limits of a template's fields.
const (
	maxNameLen      = 200
	maxReasonLen    = 500
	maxProductCodes = 200
	maxCodeLen      = 100
	maxValidDays    = 3650
	maxPerCustomer  = 1000
)

// TemplateInput is a voucher template's terms. Validity is either fixed
// (ValidUntil, and ValidFrom when it starts later than the issue) or
// ValidDays days counted in the billing time zone with the day of issue as
// the first: a voucher issued on the 29th with 2 days expires at 00:00 of
// the 31st.
type TemplateInput struct {
	Name             string
	FaceValue        decimal.Decimal
	ProductScope     ProductScope
	ProductCodes     []string
	BillingModes     BillingModes
	ValidFrom        *time.Time
	ValidUntil       *time.Time
	ValidDays        *int
	PerCustomerLimit int
	Reason           string
}

// check validates in and normalizes its product codes (trimmed, unique,
// sorted).
func (in *TemplateInput) check(now time.Time) error {
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" || utf8.RuneCountInString(in.Name) > maxNameLen {
		return apperr.Invalid("name", "a template needs a name of 1 to %d characters", maxNameLen)
	}
	if err := positive("faceValue", in.FaceValue); err != nil {
		return err
	}
	switch in.ProductScope {
	case ScopeAll, ScopeOnly, ScopeExcept:
	default:
		return apperr.Invalid("productScope", "unknown product scope %q", in.ProductScope)
	}
	codes := make([]string, 0, len(in.ProductCodes))
	for _, c := range in.ProductCodes {
		c = strings.TrimSpace(c)
		if c == "" || len(c) > maxCodeLen || !utf8.ValidString(c) {
			return apperr.Invalid("productCodes", "a product code has 1 to %d characters", maxCodeLen)
		}
		codes = append(codes, c)
	}
	slices.Sort(codes)
	in.ProductCodes = slices.Compact(codes)
	if len(in.ProductCodes) > maxProductCodes {
		return apperr.Invalid("productCodes", "a template lists at most %d product codes", maxProductCodes)
	}
	if in.ProductScope == ScopeAll && len(in.ProductCodes) > 0 {
		return apperr.Invalid("productCodes", "a template for all products lists no product codes")
	}
	if in.ProductScope != ScopeAll && len(in.ProductCodes) == 0 {
		return apperr.Invalid("productCodes", "a template for %s products lists at least one product code", strings.ToLower(string(in.ProductScope)))
	}
	switch in.BillingModes {
	case ModesAll, ModesPrepaid, ModesPayPerUse:
	default:
		return apperr.Invalid("billingModes", "unknown billing modes %q", in.BillingModes)
	}
	switch {
	case (in.ValidUntil == nil) == (in.ValidDays == nil):
		return apperr.Invalid("validUntil", "give either validUntil (fixed dates) or validDays (days from issue)")
	case in.ValidDays != nil:
		if *in.ValidDays < 1 || *in.ValidDays > maxValidDays {
			return apperr.Invalid("validDays", "validDays is between 1 and %d", maxValidDays)
		}
	default:
		if !in.ValidUntil.After(now) {
			return apperr.Invalid("validUntil", "the validity must end in the future")
		}
		if in.ValidFrom != nil && !in.ValidFrom.Before(*in.ValidUntil) {
			return apperr.Invalid("validFrom", "validFrom must lie before validUntil")
		}
	}
	if in.ValidDays != nil && in.ValidFrom != nil {
		return apperr.Invalid("validFrom", "validFrom goes with fixed dates (validUntil), not with validDays")
	}
	if in.PerCustomerLimit < 1 || in.PerCustomerLimit > maxPerCustomer {
		return apperr.Invalid("perCustomerLimit", "perCustomerLimit is between 1 and %d", maxPerCustomer)
	}
	in.Reason = strings.TrimSpace(in.Reason)
	if in.Reason == "" || utf8.RuneCountInString(in.Reason) > maxReasonLen {
		return apperr.Invalid("reason", "a template needs a reason of 1 to %d characters", maxReasonLen)
	}
	return nil
}

// validity returns when a voucher of t issued at now takes effect and
// expires.
func (t *Template) validity(now time.Time, loc *time.Location) (effective, expires time.Time) {
	if t.ValidDays != nil {
		d := now.In(loc)
		day := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc)
		return now, day.AddDate(0, 0, *t.ValidDays).UTC()
	}
	effective = now
	if t.ValidFrom != nil && t.ValidFrom.After(now) {
		effective = *t.ValidFrom
	}
	return effective, *t.ValidUntil
}

// templateSummary is the audit summary of a template.
func templateSummary(t *Template) map[string]any {
	return map[string]any{"name": t.Name, "faceValue": models.FormatDecimal(t.FaceValue), "productScope": t.ProductScope,
		"productCodes": []string(t.ProductCodes), "billingModes": t.BillingModes, "validFrom": t.ValidFrom, "validUntil": t.ValidUntil,
		"validDays": t.ValidDays, "perCustomerLimit": t.PerCustomerLimit, "reason": t.Reason, "status": t.Status}
}

// CreateTemplate defines a voucher template of partner partnerID (its
// ADMIN or FINANCE, or an ancestor's or the platform's acting for it).
func (s *Service) CreateTemplate(ctx context.Context, partnerID int64, in TemplateInput) (*Template, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var t *Template
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		a, err := partnerInScope(tx, sc, partnerID, "partnerId")
		if err != nil {
			return err
		}
		if err := sc.Require(accounts.PermFinance); err != nil {
			return err
		}
		if err := in.check(tx.Now()); err != nil {
			return err
		}
		t = &Template{PartnerID: a.ID, Status: TemplateActive, CreatedAt: tx.Now(), UpdatedAt: tx.Now()}
		t.apply(in)
		if err := tx.DB.Table("voucher_templates").Omit("ID", "RetiredAt").Create(t).Error; err != nil {
			return fmt.Errorf("create voucher template: %w", err)
		}
		return tx.Audit("voucher.template_created", a.ID, nil, templateSummary(t))
	})
	return t, err
}

func (t *Template) apply(in TemplateInput) {
	t.Name, t.FaceValue, t.ProductScope, t.ProductCodes = in.Name, in.FaceValue, in.ProductScope, store.Strings(in.ProductCodes)
	t.BillingModes, t.ValidFrom, t.ValidUntil, t.ValidDays = in.BillingModes, in.ValidFrom, in.ValidUntil, in.ValidDays
	t.PerCustomerLimit, t.Reason = in.PerCustomerLimit, in.Reason
}

// lockTemplate loads template id through the caller's scope, FOR UPDATE.
func lockTemplate(tx *store.Tx, sc accounts.Scope, id int64) (*Template, *models.Account, error) {
	t, err := templateIn(tx.DB, sc, id, " FOR UPDATE OF t")
	if err != nil {
		return nil, nil, err
	}
	var a models.Account
	if err := tx.DB.Take(&a, t.PartnerID).Error; err != nil {
		return nil, nil, fmt.Errorf("load template's partner: %w", err)
	}
	return t, &a, nil
}

// templateIn loads template id whose partner is in scope sc.
func templateIn(db *gorm.DB, sc accounts.Scope, id int64, suffix string) (*Template, error) {
	q, args := sc.SQL("a.path")
	var t Template
	err := db.Raw(`SELECT t.* FROM voucher_templates t JOIN accounts a ON a.id = t.partner_id WHERE t.id = ? AND `+q+suffix,
		append([]any{id}, args...)...).Scan(&t).Error
	if err != nil {
		return nil, fmt.Errorf("load voucher template: %w", err)
	}
	if t.ID == 0 {
		return nil, apperr.NotFoundf("voucher template not found")
	}
	return &t, nil
}

// changeTemplate runs change on template id, locked, once the caller is
// found to see it (else NOT_FOUND) and to hold ADMIN or FINANCE.
func (s *Service) changeTemplate(ctx context.Context, id int64, change func(tx *store.Tx, t *Template, a *models.Account) error) (*Template, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var t *Template
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		var a *models.Account
		if t, a, err = lockTemplate(tx, sc, id); err != nil {
			return err
		}
		if err := sc.Require(accounts.PermFinance); err != nil {
			return err
		}
		return change(tx, t, a)
	})
	return t, err
}

// UpdateTemplate changes the terms of a template no voucher was issued from
// and no issue waits on; one in use is PRECONDITION_FAILED: retire it and
// define a new one.
func (s *Service) UpdateTemplate(ctx context.Context, id int64, in TemplateInput) (*Template, error) {
	return s.changeTemplate(ctx, id, func(tx *store.Tx, t *Template, a *models.Account) error {
		if t.Status == TemplateRetired {
			return apperr.Preconditionf("the template is retired")
		}
		var used bool
		if err := tx.DB.Raw(`SELECT EXISTS (SELECT 1 FROM vouchers WHERE template_id = ?)
			OR EXISTS (SELECT 1 FROM voucher_issuances WHERE template_id = ? AND status = 'PENDING_APPROVAL')`, t.ID, t.ID).Scan(&used).Error; err != nil {
			return fmt.Errorf("check template use: %w", err)
		}
		if used {
			return apperr.Preconditionf("vouchers were issued from this template: it cannot change, only be retired")
		}
		if err := in.check(tx.Now()); err != nil {
			return err
		}
		before := templateSummary(t)
		t.apply(in)
		t.UpdatedAt = tx.Now()
		if err := tx.DB.Table("voucher_templates").Where("id = ?", t.ID).Select("*").Omit("ID", "PartnerID", "CreatedAt", "RetiredAt", "Status").Updates(t).Error; err != nil {
			return fmt.Errorf("update voucher template: %w", err)
		}
		return tx.Audit("voucher.template_updated", a.ID, before, templateSummary(t))
	})
}

// RetireTemplate stops issuing from a template; its vouchers stay as they
// are and an issue waiting for approval is refused when decided. Retiring
// twice is a no-op.
func (s *Service) RetireTemplate(ctx context.Context, id int64) (*Template, error) {
	return s.changeTemplate(ctx, id, func(tx *store.Tx, t *Template, a *models.Account) error {
		if t.Status == TemplateRetired {
			return nil
		}
		now := tx.Now()
		if err := tx.DB.Exec(`UPDATE voucher_templates SET status = 'RETIRED', retired_at = ?, updated_at = ? WHERE id = ?`, now, now, t.ID).Error; err != nil {
			return fmt.Errorf("retire voucher template: %w", err)
		}
		t.Status, t.RetiredAt, t.UpdatedAt = TemplateRetired, &now, now
		return tx.Audit("voucher.template_retired", a.ID, map[string]any{"status": TemplateActive}, map[string]any{"status": TemplateRetired, "template": t.ID})
	})
}

// Template returns one template (NOT_FOUND outside the caller's scope).
func (s *Service) Template(ctx context.Context, id int64) (*Template, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	return templateIn(s.st.DB.WithContext(ctx), sc, id, "")
}

// TemplatesByID loads templates by id for the loaders, unscoped: callers
// reach them through a voucher or issuance already in scope.
func (s *Service) TemplatesByID(ctx context.Context, idList []int64) (map[int64]*Template, error) {
	var list []*Template
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT * FROM voucher_templates WHERE id = ANY(?::bigint[])`, store.Int64Array(idList)).Scan(&list).Error; err != nil {
		return nil, fmt.Errorf("load voucher templates: %w", err)
	}
	out := make(map[int64]*Template, len(list))
	for _, t := range list {
		out[t.ID] = t
	}
	return out, nil
}

// Templates returns a page of a partner's templates, newest first; retired
// ones only when asked.
func (s *Service) Templates(ctx context.Context, partnerID int64, withRetired bool, first int, afterID int64) (*store.Page[*Template], error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	db := s.st.DB.WithContext(ctx)
	if _, err := accounts.GetInScope(db, sc, partnerID); err != nil {
		return nil, err
	}
	where, args := "b.partner_id = ?", []any{partnerID}
	if !withRetired {
		where += " AND b.status = 'ACTIVE'"
	}
	return store.PageOf[*Template](db, "voucher_templates b", where, args, "-b.id", "b.id DESC", first, MaxPage, afterID)
}
