package billing

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
)

// IncentiveStatus is an incentive's status.
type IncentiveStatus string

// The incentive statuses.
const (
	// IncentivePending: computed with a DRAFT bill; follows its regenerations.
	IncentivePending IncentiveStatus = "PENDING"
	// IncentiveEarned: the bill is issued; the partner may apply for payout.
	IncentiveEarned IncentiveStatus = "EARNED"
	// IncentiveApplied: payout requested, awaiting the platform's review.
	IncentiveApplied IncentiveStatus = "APPLIED"
	// IncentiveApproved: payout approved (final).
	IncentiveApproved IncentiveStatus = "APPROVED"
	// IncentiveRejected: payout rejected with a reason; the partner may apply again.
	IncentiveRejected IncentiveStatus = "REJECTED"
)

// Tier is one revenue tier of a policy: from Threshold of revenue on, the
// rebate is Percent of the whole revenue.
type Tier struct {
	Threshold decimal.Decimal `json:"threshold"`
	Percent   decimal.Decimal `json:"percent"`
}

// Tiers are a policy's tiers, thresholds ascending.
type Tiers []Tier

// Scan implements sql.Scanner (jsonb).
func (t *Tiers) Scan(v any) error {
	var b []byte
	switch x := v.(type) {
	case []byte:
		b = x
	case string:
		b = []byte(x)
	default:
		return fmt.Errorf("tiers: cannot scan %T", v)
	}
	return json.Unmarshal(b, t)
}

// Value implements driver.Valuer (jsonb).
func (t Tiers) Value() (driver.Value, error) {
	b, err := json.Marshal(t)
	return string(b), err
}

// Rate is the rebate percentage revenue earns: the highest tier whose
// threshold it reaches, or 0 below the first.
func (t Tiers) Rate(revenue decimal.Decimal) decimal.Decimal {
	rate := decimal.Zero
	for _, tier := range t {
		if revenue.GreaterThanOrEqual(tier.Threshold) {
			rate = tier.Percent
		}
	}
	return rate
}

// Policy is a platform incentive policy, in force from EffectiveMonth until
// a later one.
type Policy struct {
	ID             int64
	Name           string
	EffectiveMonth int
	Tiers          Tiers
	CreatedAt      time.Time
	CreatedBy      string
}

// IsNode marks Policy as a Node.
func (Policy) IsNode() {}

// GlobalID is the policy's Node ID.
func (p *Policy) GlobalID() string { return ids.Encode(TypePolicy, p.ID) }

// Incentive is a tier-1 partner's incentive earning of a month.
type Incentive struct {
	ID        int64
	PartnerID int64
	Month     int
	BillID    int64
	PolicyID  int64
	Revenue   decimal.Decimal
	Percent   decimal.Decimal
	Amount    decimal.Decimal
	Status    IncentiveStatus
	Reason    *string
	UpdatedAt time.Time
}

// IsNode marks Incentive as a Node.
func (Incentive) IsNode() {}

// GlobalID is the incentive's Node ID.
func (i *Incentive) GlobalID() string { return ids.Encode(TypeIncentive, i.ID) }

// IncentiveEvent is one line of an incentive's history.
type IncentiveEvent struct {
	ID          int64
	IncentiveID int64
	At          time.Time
	Actor       string
	Action      string
	Status      IncentiveStatus
	Note        *string
}

// CreatePolicy adds an incentive policy in force from effective (platform
// ADMIN). Tiers need ascending, distinct, non-negative thresholds and
// percentages in 0..100. A policy may not start in a month whose bills are
// issued (their incentives are final), nor share its month with another.
func (s *Service) CreatePolicy(ctx context.Context, name string, effective models.Month, tiers Tiers) (*Policy, error) {
	if err := requirePlatformAdmin(ctx); err != nil {
		return nil, err
	}
	name = strings.TrimSpace(name)
	if name == "" || len([]rune(name)) > 200 {
		return nil, apperr.Invalid("name", "a policy needs a name of 1 to 200 characters")
	}
	if effective.Year < 2000 || effective.Year > 9999 {
		return nil, apperr.Invalid("effectiveMonth", "%s is out of range", effective)
	}
	if len(tiers) == 0 || len(tiers) > 50 {
		return nil, apperr.Invalid("tiers", "a policy has 1 to 50 tiers")
	}
	for i, t := range tiers {
		if t.Threshold.IsNegative() {
			return nil, apperr.Invalid("tiers", "tier %d: the threshold must not be negative", i+1)
		}
		if t.Percent.IsNegative() || t.Percent.GreaterThan(decimal.NewFromInt(100)) {
			return nil, apperr.Invalid("tiers", "tier %d: the percentage must be between 0 and 100", i+1)
		}
		if i > 0 && !t.Threshold.GreaterThan(tiers[i-1].Threshold) {
			return nil, apperr.Invalid("tiers", "tier %d: thresholds must be in ascending order, each above the one before", i+1)
		}
	}
	raw, err := json.Marshal(tiers)
	if err != nil {
		return nil, fmt.Errorf("encode tiers: %w", err)
	}
	var out Policy
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.DB.Exec(`SELECT pg_advisory_xact_lock(?, 0)`, billRunLock).Error; err != nil {
			return fmt.Errorf("lock policies: %w", err)
		}
		var issued int
		if err := tx.DB.Raw(`SELECT coalesce(max(month), 0) FROM partner_bills WHERE status = 'ISSUED'`).Scan(&issued).Error; err != nil {
			return fmt.Errorf("read the last issued month: %w", err)
		}
		if effective.Key() <= issued {
			return apperr.Preconditionf("the bills of %s are issued and their incentives final: a new policy starts after it", models.MonthOfKey(issued))
		}
		err := tx.DB.Raw(`INSERT INTO incentive_policies (name, effective_month, tiers, created_at, created_by)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (effective_month) DO NOTHING RETURNING *`,
			name, effective.Key(), string(raw), tx.Now(), store.ActorFrom(tx.Context()).Label).Scan(&out).Error
		if err != nil {
			return fmt.Errorf("create policy: %w", err)
		}
		if out.ID == 0 {
			return apperr.Conflictf("a policy already starts in %s", effective)
		}
		return tx.Audit("billing.policy_created", 0, nil, map[string]any{"policy": out.ID, "name": name,
			"effectiveMonth": effective.String(), "tiers": tiers})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Policies lists the incentive policies, latest first. Every partner may
// read them: they are the platform's published terms.
func (s *Service) Policies(ctx context.Context) ([]*Policy, error) {
	if _, err := accounts.ScopeOf(ctx); err != nil {
		return nil, err
	}
	var out []*Policy
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT * FROM incentive_policies ORDER BY effective_month DESC`).Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	return out, nil
}

// computeIncentives computes, in a bill run of month m, the incentive of
// each tier-1 partner's DRAFT bill under the policy in force: revenue is
// the bill's actual total (adjustments included), the amount its tier's
// percentage of it, rounded half-even to 2 decimals.
func (s *Service) computeIncentives(tx *store.Tx, m int, subset string, args []any) error {
	var pol Policy
	if err := tx.DB.Raw(`SELECT * FROM incentive_policies WHERE effective_month <= ? ORDER BY effective_month DESC LIMIT 1`, m).Scan(&pol).Error; err != nil {
		return fmt.Errorf("load the policy of %d: %w", m, err)
	}
	if pol.ID == 0 {
		return nil
	}
	var bills []PartnerBill
	err := tx.DB.Raw(`SELECT b.* FROM partner_bills b JOIN accounts a ON a.id = b.partner_id
		WHERE b.month = ? AND b.status = 'DRAFT' AND a.depth = 1`+strings.ReplaceAll(subset, "partner_id", "b.partner_id"),
		append([]any{m}, args...)...).Scan(&bills).Error
	if err != nil {
		return fmt.Errorf("load the tier-1 drafts of %d: %w", m, err)
	}
	if len(bills) == 0 {
		return nil
	}
	sort.Slice(bills, func(i, j int) bool { return bills[i].ID < bills[j].ID })
	n := len(bills)
	partners, billIDs := make([]int64, n), make([]int64, n)
	revenue, percent, amount := make([]string, n), make([]string, n), make([]string, n)
	for i, b := range bills {
		rate := pol.Tiers.Rate(b.ActualTotal)
		partners[i], billIDs[i] = b.PartnerID, b.ID
		revenue[i], percent[i] = b.ActualTotal.String(), rate.String()
		amount[i] = b.ActualTotal.Mul(rate).Div(decimal.NewFromInt(100)).RoundBank(2).String()
	}
	err = tx.DB.Exec(`INSERT INTO incentives (partner_id, month, bill_id, policy_id, revenue, percent, amount, status, updated_at)
		SELECT p, ?, b, ?, r::numeric, pc::numeric, am::numeric, 'PENDING', ?
		FROM unnest(?::bigint[], ?::bigint[], ?::text[], ?::text[], ?::text[]) AS x(p, b, r, pc, am)
		ON CONFLICT (partner_id, month) DO UPDATE SET bill_id = EXCLUDED.bill_id, policy_id = EXCLUDED.policy_id,
			revenue = EXCLUDED.revenue, percent = EXCLUDED.percent, amount = EXCLUDED.amount, updated_at = EXCLUDED.updated_at
		WHERE incentives.status = 'PENDING'`,
		m, pol.ID, tx.Now(), store.Int64Array(partners), store.Int64Array(billIDs),
		store.TextArray(revenue), store.TextArray(percent), store.TextArray(amount)).Error
	if err != nil {
		return fmt.Errorf("write the incentives of %d: %w", m, err)
	}
	return nil
}

// earnIncentives turns the PENDING incentives of the issued bills billIDs
// into EARNED, with their history.
func (s *Service) earnIncentives(tx *store.Tx, billIDs []int64) error {
	err := tx.DB.Exec(`WITH e AS (UPDATE incentives SET status = 'EARNED', updated_at = ? WHERE bill_id = ANY(?) AND status = 'PENDING' RETURNING id)
		INSERT INTO incentive_events (incentive_id, at, actor, action, status) SELECT id, ?, ?, 'EARNED', 'EARNED' FROM e`,
		tx.Now(), store.Int64Array(billIDs), tx.Now(), store.ActorFrom(tx.Context()).Label).Error
	if err != nil {
		return fmt.Errorf("earn incentives: %w", err)
	}
	return nil
}

// incentiveVisible reports whether the caller may see inc: the partner's
// own users, and the platform's.
func incentiveVisible(p *accounts.Principal, inc *Incentive) bool {
	return p.System || p.IsPlatform() || p.AccountID == inc.PartnerID
}

// lockIncentive locks incentive id if the caller may see it, else NOT_FOUND.
func (s *Service) lockIncentive(tx *store.Tx, id int64) (*Incentive, accounts.Scope, error) {
	sc, err := accounts.ScopeOf(tx.Context())
	if err != nil {
		return nil, sc, err
	}
	var inc Incentive
	if err := tx.DB.Raw(`SELECT * FROM incentives WHERE id = ? FOR UPDATE`, id).Scan(&inc).Error; err != nil {
		return nil, sc, fmt.Errorf("lock incentive %d: %w", id, err)
	}
	if inc.ID == 0 || !incentiveVisible(sc.Principal(), &inc) {
		return nil, sc, accounts.NotFound("incentive")
	}
	return &inc, sc, nil
}

// ApplyForPayout asks for the payout of an EARNED (or REJECTED) incentive:
// the partner's ADMIN or FINANCE users only, for a positive amount.
func (s *Service) ApplyForPayout(ctx context.Context, id int64) (*Incentive, error) {
	return s.changeIncentive(ctx, id, "APPLIED", nil, func(inc *Incentive, sc accounts.Scope) error {
		if sc.Principal().AccountID != inc.PartnerID {
			return apperr.Forbiddenf("only the partner applies for its payout")
		}
		if err := sc.Require(accounts.PermFinance); err != nil {
			return err
		}
		switch inc.Status {
		case IncentiveEarned, IncentiveRejected:
		case IncentivePending:
			return apperr.Preconditionf("the incentive's bill is not issued yet: apply once it is")
		default:
			return apperr.Conflictf("the incentive is already %s", inc.Status)
		}
		if !inc.Amount.IsPositive() {
			return apperr.Preconditionf("the incentive's amount is %s: there is nothing to pay out", inc.Amount.StringFixed(2))
		}
		return nil
	})
}

// ApprovePayout approves an APPLIED payout (a platform REVIEWER).
func (s *Service) ApprovePayout(ctx context.Context, id int64) (*Incentive, error) {
	return s.changeIncentive(ctx, id, "APPROVED", nil, reviewable)
}

// RejectPayout rejects an APPLIED payout with a reason (a platform
// REVIEWER); the partner may apply again.
func (s *Service) RejectPayout(ctx context.Context, id int64, reason string) (*Incentive, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" || len([]rune(reason)) > 500 {
		return nil, apperr.Invalid("reason", "a rejection needs a reason of 1 to 500 characters")
	}
	return s.changeIncentive(ctx, id, "REJECTED", &reason, reviewable)
}

func reviewable(inc *Incentive, sc accounts.Scope) error {
	if err := sc.Require(accounts.PermReview); err != nil {
		return err
	}
	if inc.Status != IncentiveApplied {
		return apperr.Conflictf("the incentive is %s, not awaiting review", inc.Status)
	}
	return nil
}

// changeIncentive moves incentive id to status after check allows it,
// with its history, audit entry and notification, in one transaction.
func (s *Service) changeIncentive(ctx context.Context, id int64, status IncentiveStatus, reason *string,
	check func(*Incentive, accounts.Scope) error) (*Incentive, error) {
	var out Incentive
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		inc, sc, err := s.lockIncentive(tx, id)
		if err != nil {
			return err
		}
		if err := check(inc, sc); err != nil {
			return err
		}
		before := inc.Status
		if err := tx.DB.Raw(`UPDATE incentives SET status = ?, reason = ?, updated_at = ? WHERE id = ? RETURNING *`,
			string(status), reason, tx.Now(), id).Scan(&out).Error; err != nil {
			return fmt.Errorf("update incentive %d: %w", id, err)
		}
		if err := tx.DB.Exec(`INSERT INTO incentive_events (incentive_id, at, actor, action, status, note) VALUES (?, ?, ?, ?, ?, ?)`,
			id, tx.Now(), store.ActorFrom(tx.Context()).Label, string(status), string(status), reason).Error; err != nil {
			return fmt.Errorf("record incentive %d's history: %w", id, err)
		}
		if err := tx.Audit("billing.incentive_"+strings.ToLower(string(status)), inc.PartnerID,
			map[string]any{"incentive": id, "status": before}, map[string]any{"incentive": id, "status": status, "reason": reason}); err != nil {
			return err
		}
		return tx.Emit(notify.PayoutChanged{IncentiveID: id, PartnerID: inc.PartnerID, Month: models.MonthOfKey(inc.Month).String(),
			Amount: inc.Amount.StringFixed(2), Status: string(status), Reason: strOr(reason), URL: s.url + "/incentives/" + out.GlobalID()})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func strOr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// Incentive returns incentive id if the caller may see it, else NOT_FOUND.
func (s *Service) Incentive(ctx context.Context, id int64) (*Incentive, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var inc Incentive
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT * FROM incentives WHERE id = ?`, id).Scan(&inc).Error; err != nil {
		return nil, fmt.Errorf("load incentive %d: %w", id, err)
	}
	if inc.ID == 0 || !incentiveVisible(sc.Principal(), &inc) {
		return nil, accounts.NotFound("incentive")
	}
	return &inc, nil
}

// IncentivesOfBills returns the incentives computed with bills billIDs that
// the caller may see, by bill.
func (s *Service) IncentivesOfBills(ctx context.Context, billIDs []int64) (map[int64]*Incentive, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var list []*Incentive
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT * FROM incentives WHERE bill_id = ANY(?)`, store.Int64Array(billIDs)).Scan(&list).Error; err != nil {
		return nil, fmt.Errorf("load incentives: %w", err)
	}
	out := make(map[int64]*Incentive, len(list))
	for _, inc := range list {
		if incentiveVisible(sc.Principal(), inc) {
			out[inc.BillID] = inc
		}
	}
	return out, nil
}

// IncentiveFilter narrows Incentives.
type IncentiveFilter struct {
	// PartnerID: one partner's (0: the caller's own, or for the platform
	// every partner's).
	PartnerID int64
	Status    *IncentiveStatus
}

// Incentives returns a page of up to first incentives the caller may see,
// newest first, after afterID, with the size of the whole list.
func (s *Service) Incentives(ctx context.Context, f IncentiveFilter, first int, afterID int64) (*Page[*Incentive], error) {
	q, args, err := s.incentivesWhere(ctx, f)
	if err != nil {
		return nil, err
	}
	return pageOf[*Incentive](s.st.DB.WithContext(ctx), "incentives b", q, args, "-b.id", "b.id DESC", first, afterID)
}

func (s *Service) incentivesWhere(ctx context.Context, f IncentiveFilter) (string, []any, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return "", nil, err
	}
	p := sc.Principal()
	q, args := `true`, []any{}
	switch {
	case f.PartnerID != 0:
		if !p.IsPlatform() && f.PartnerID != p.AccountID {
			return "", nil, accounts.NotFound("partner")
		}
		q, args = `partner_id = ?`, []any{f.PartnerID}
	case !p.IsPlatform():
		q, args = `partner_id = ?`, []any{p.AccountID}
	}
	if f.Status != nil {
		q += ` AND status = ?`
		args = append(args, string(*f.Status))
	}
	return q, args, nil
}

// IncentiveHistory returns the history of incentives ids (already loaded
// through Incentive or Incentives), oldest first, by incentive.
func (s *Service) IncentiveHistory(ctx context.Context, ids []int64) (map[int64][]*IncentiveEvent, error) {
	var list []*IncentiveEvent
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT * FROM incentive_events WHERE incentive_id = ANY(?) ORDER BY incentive_id, id`,
		store.Int64Array(ids)).Scan(&list).Error; err != nil {
		return nil, fmt.Errorf("load incentive history: %w", err)
	}
	return groupBy(list, func(x *IncentiveEvent) int64 { return x.IncentiveID }), nil
}

// Policy returns policy id (every signed-in caller may read policies).
func (s *Service) Policy(ctx context.Context, id int64) (*Policy, error) {
	if _, err := accounts.ScopeOf(ctx); err != nil {
		return nil, err
	}
	var p Policy
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT * FROM incentive_policies WHERE id = ?`, id).Scan(&p).Error; err != nil {
		return nil, fmt.Errorf("load policy %d: %w", id, err)
	}
	if p.ID == 0 {
		return nil, apperr.NotFoundf("incentive policy not found")
	}
	return &p, nil
}
