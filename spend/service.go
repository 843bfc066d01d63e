// Package spend holds what customers spend: the ingestion of expenditure
// records from the cloud's billing pipeline, attributed to the partner that
// owned the customer at usage time, and the running totals per customer and
// Beijing-time month that budgets, arrears and bills read (DOMAIN.md §4–5).
package spend

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/models"
	"partnerd/store"
)

// Service ingests expenditure records and answers running totals.
type Service struct {
	st  *store.Store
	loc *time.Location
	log *slog.Logger

	// Test hooks (export_test.go): the direct path's batch size, a function
	// run before each of its COPYs, and forcing the staged path.
	batchSize  int
	beforeCopy func()
	staged     bool
}

// New returns the spend service on st. loc is the billing time zone
// (BILLING_TIMEZONE, Asia/Shanghai by default) in which records are assigned
// to calendar months.
func New(st *store.Store, loc *time.Location) *Service {
	if loc == nil {
		loc = time.UTC
	}
	return &Service{st: st, loc: loc, log: slog.Default()}
}

// WithLogger returns a copy of s that logs ingestion progress to l.
func (s *Service) WithLogger(l *slog.Logger) *Service {
	c := *s
	if l != nil {
		c.log = l
	}
	return &c
}

// Totals is a customer's running spend in one month: the sums of the list
// and actual amounts of its records, how many records they count, and AsOf,
// the time the newest of them was received (nil when there are none).
type Totals struct {
	Month   models.Month
	List    decimal.Decimal
	Actual  decimal.Decimal
	Records int64
	AsOf    *time.Time
}

// MonthTotals returns the running totals of month for each of the accounts
// that is in the caller's scope: a customer's or personal account's own
// spend, and for a partner (or the platform) the spend of the records owned
// by the partners of its subtree, itself included — ownership at usage time,
// as bills count it (DOMAIN.md §1: a partner sees its subtree, a
// customer itself). An account in scope without records that month gets zero
// totals; an ID outside the scope, or of no account, is absent from the map,
// so a caller cannot tell the two apart. One query whatever the number of
// IDs, so dataloaders can batch through it.
func (s *Service) MonthTotals(ctx context.Context, customerIDs []int64, month models.Month) (map[int64]Totals, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]Totals, len(customerIDs))
	if len(customerIDs) == 0 {
		return out, nil
	}
	inScope, scopeArgs := sc.SQL("a.path")
	args := append([]any{month.Key(), month.Key(), store.Int64Array(customerIDs)}, scopeArgs...)
	var rows []struct {
		ID             int64
		ListTotal      decimal.Decimal
		ActualTotal    decimal.Decimal
		Records        int64
		LastReceivedAt *time.Time
	}
	err = s.st.DB.WithContext(ctx).Raw(`SELECT a.id,
			coalesce(t.list_total, o.list_total, 0) AS list_total,
			coalesce(t.actual_total, o.actual_total, 0) AS actual_total,
			coalesce(t.records, o.records, 0) AS records,
			coalesce(t.last_received_at, o.last_received_at) AS last_received_at
		FROM accounts a
		LEFT JOIN spend_totals t ON a.kind IN ('CUSTOMER', 'PERSONAL') AND t.customer_id = a.id AND t.month = ?
		LEFT JOIN LATERAL (
			SELECT sum(ot.list_total) AS list_total, sum(ot.actual_total) AS actual_total,
				sum(ot.records)::bigint AS records, max(ot.last_received_at) AS last_received_at
			FROM owner_spend_totals ot JOIN accounts p ON p.id = ot.owner_id
			WHERE a.kind NOT IN ('CUSTOMER', 'PERSONAL') AND ot.month = ? AND p.path LIKE a.path || '%'
		) o ON true
		WHERE a.id = ANY(?::bigint[]) AND `+inScope, args...).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("spend totals of %s: %w", month, err)
	}
	for _, r := range rows {
		t := Totals{Month: month, List: r.ListTotal, Actual: r.ActualTotal, Records: r.Records}
		if r.LastReceivedAt != nil {
			at := r.LastReceivedAt.UTC()
			t.AsOf = &at
		}
		out[r.ID] = t
	}
	return out, nil
}

// Location is the billing time zone that months are computed in.
func (s *Service) Location() *time.Location { return s.loc }
