package expenditures

import (
	"context"
	"fmt"
	"time"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/store"
)

// Page is one keyset page of records.
type Page struct {
	Records []*Record
	HasNext bool
}

// position is where a record stands in the order of pages.
type position struct {
	Month   int
	UsageAt time.Time
	ID      int64
}

// Page returns up to first records that f selects in the caller's scope
// (see the package comment), after the record afterID (0: from the start).
//
// Records come in usage-time order — by billing month, usage time, then ID
// — and a page starts strictly after the position of the record afterID, so
// paging is stable while records are being ingested: no record is returned
// twice, and every record that existed when the first page was read is
// returned once. (A record arriving during the paging appears when its usage
// time lies after the current page; a late one for an earlier time appears
// on a later query.) afterID must be a record of the same selection,
// normally the endCursor of the previous page; another is VALIDATION.
//
// How: for a subtree, each owner's records come in that order from the
// owner index (owner_id, month, UTC hour of usage; one hour's records sorted
// at a time) and the owners' first rows are merged, so a page reads about
// first+1 records per owner with records in the period, plus the rest of
// the hour it starts in; for one customer, from (customer_id, month,
// usage_at).
//
// Errors: as Summarize; and VALIDATION for first outside 0..500.
func (s *Service) Page(ctx context.Context, f Filter, first int, afterID int64) (*Page, error) {
	if err := accounts.ValidatePage(first); err != nil {
		return nil, err
	}
	sel, err := s.resolve(ctx, f)
	if err != nil {
		return nil, err
	}
	db := s.st.DB.WithContext(ctx)
	var after *position
	if afterID != 0 {
		where, args := sel.where("e", true)
		var pos position
		if err := db.Raw(`SELECT e.month, e.usage_at, e.id FROM expenditures e WHERE e.id = ? AND `+where,
			append([]any{afterID}, args...)...).Scan(&pos).Error; err != nil {
			return nil, fmt.Errorf("expenditure page position: %w", err)
		}
		if pos.ID == 0 {
			return nil, apperr.Invalid("after", "the cursor is not valid for this query: pass an endCursor or cursor from a previous page of the same query")
		}
		after = &pos
	}
	page := &Page{Records: []*Record{}}
	if sel.empty() {
		return page, nil
	}
	q, args := pageQuery(sel, first, after)
	if err := db.Raw(q, args...).Scan(&page.Records).Error; err != nil {
		return nil, fmt.Errorf("expenditure page: %w", err)
	}
	if len(page.Records) > first {
		page.Records, page.HasNext = page.Records[:first], true
	}
	for _, r := range page.Records {
		r.UsageAt, r.ReceivedAt = r.UsageAt.UTC(), r.ReceivedAt.UTC()
	}
	return page, nil
}

// usageHour is the third key of the owner index expenditures_owner_hour_idx
// (migration 00014): the UTC hour of usage. Ordering by (month, usageHour,
// usage_at, id) is ordering by (month, usage_at, id) — the hour only lets
// the index serve it, one hour's records sorted at a time.
const usageHour = `date_trunc('hour', e.usage_at AT TIME ZONE 'UTC')`

// pageQuery renders the page of first+1 records of sel after position
// after (nil: from the start).
func pageQuery(sel *selection, first int, after *position) (string, []any) {
	var q string
	var args []any
	if sel.byOwner && sel.customer == 0 {
		where, wargs := sel.where("e", false)
		keyset := ""
		if after != nil {
			keyset = ` AND (e.month, ` + usageHour + `, e.usage_at, e.id) > (?, date_trunc('hour', ?::timestamptz AT TIME ZONE 'UTC'), ?, ?)`
			wargs = append(wargs, after.Month, after.UsageAt, after.UsageAt, after.ID)
		}
		q = `SELECT x.* FROM unnest(?::bigint[]) AS o(id) CROSS JOIN LATERAL (
				SELECT e.* FROM expenditures e
				WHERE e.owner_id = o.id AND ` + where + keyset + `
				ORDER BY e.month, ` + usageHour + `, e.usage_at, e.id LIMIT ?
			) x ORDER BY x.month, x.usage_at, x.id LIMIT ?`
		args = append(append([]any{store.Int64Array(sel.owners)}, wargs...), first+1, first+1)
		return q, args
	}
	where, args := sel.where("e", true)
	keyset := ""
	if after != nil {
		keyset = ` AND (e.month, e.usage_at, e.id) > (?, ?, ?)`
		args = append(args, after.Month, after.UsageAt, after.ID)
	}
	q = `SELECT e.* FROM expenditures e WHERE ` + where + keyset + `
		ORDER BY e.month, e.usage_at, e.id LIMIT ?`
	return q, append(args, first+1)
}

// Count returns how many records f selects in the caller's scope: from the
// running totals when they count exactly those records (a subtree or a
// customer's own, without product, tag or — for a subtree — customer
// filter), else by counting the selected records through the same indexes
// as Page. Errors: as Summarize.
func (s *Service) Count(ctx context.Context, f Filter) (int, error) {
	sel, err := s.resolve(ctx, f)
	if err != nil {
		return 0, err
	}
	if sel.empty() {
		return 0, nil
	}
	var q string
	var args []any
	switch {
	case sel.exactTotals && sel.byOwner:
		q = `SELECT coalesce(sum(records), 0) FROM owner_spend_totals WHERE owner_id = ANY(?::bigint[]) AND month BETWEEN ? AND ?`
		args = []any{store.Int64Array(sel.owners), sel.from, sel.to}
	case sel.exactTotals:
		q = `SELECT coalesce(sum(records), 0) FROM spend_totals WHERE customer_id = ? AND month BETWEEN ? AND ?`
		args = []any{sel.customer, sel.from, sel.to}
	default:
		where, wargs := sel.where("e", true)
		q, args = `SELECT count(*) FROM expenditures e WHERE `+where, wargs
	}
	var n int64
	if err := s.st.DB.WithContext(ctx).Raw(q, args...).Scan(&n).Error; err != nil {
		return 0, fmt.Errorf("count expenditures: %w", err)
	}
	return int(n), nil
}

// Get returns the record with the given ID when the caller may see it — its
// owner is in the caller's subtree, or it is the caller's own as a customer,
// or the caller is the platform — else NOT_FOUND (node(id)).
func (s *Service) Get(ctx context.Context, id int64) (*Record, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	q, args := `SELECT e.* FROM expenditures e WHERE e.id = ?`, []any{id}
	p := sc.Principal()
	switch {
	case sc.All():
	case isCustomerKind(p.AccountKind):
		q, args = q+` AND e.customer_id = ?`, append(args, p.AccountID)
	default:
		in, sargs := sc.SQL("o.path")
		q, args = q+` AND EXISTS (SELECT 1 FROM accounts o WHERE o.id = e.owner_id AND `+in+`)`, append(args, sargs...)
	}
	var r Record
	if err := s.st.DB.WithContext(ctx).Raw(q, args...).Scan(&r).Error; err != nil {
		return nil, fmt.Errorf("load expenditure %d: %w", id, err)
	}
	if r.ID == 0 {
		return nil, apperr.NotFoundf("expenditure not found")
	}
	r.UsageAt, r.ReceivedAt = r.UsageAt.UTC(), r.ReceivedAt.UTC()
	return &r, nil
}
