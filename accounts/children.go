package accounts

import (
	"context"
	"fmt"
	"strings"

	"partnerd/apperr"
	"partnerd/models"
	"partnerd/store"
)

// MaxPageSize bounds every page of every list.
const MaxPageSize = 500

// ChildFilter narrows a children listing.
type ChildFilter struct {
	Kind   models.AccountKind
	Status models.AccountStatus
	// Search matches the name, case-insensitively, anywhere in it.
	Search string
	// TagKey and TagValue, when TagKey is set, keep the accounts tagged
	// TagKey=TagValue.
	TagKey, TagValue string
}

// Key renders the filter as a comparable string (for batching loaders).
func (f ChildFilter) Key() string {
	return string(f.Kind) + "\x00" + string(f.Status) + "\x00" + f.Search + "\x00" + f.TagKey + "\x00" + f.TagValue
}

// Page is one keyset page of accounts.
type Page struct {
	Accounts []*models.Account
	HasNext  bool
}

// ValidatePage checks a page size: 0..MaxPageSize.
func ValidatePage(first int) error {
	if first < 0 || first > MaxPageSize {
		return apperr.Invalid("first", "first must be between 0 and %d", MaxPageSize)
	}
	return nil
}

// ChildrenPages returns, for each parent id, one page of its direct children
// ordered by id after afterID, in one query for all parents. The parents must
// already be in the caller's scope (children of an account in scope are in
// scope); the query still applies the scope.
func (s *Service) ChildrenPages(ctx context.Context, parentIDs []int64, f ChildFilter, first int, afterID int64) (map[int64]*Page, error) {
	q, args, err := childrenPageSQL(ctx, "a.*", parentIDs, f, first, afterID)
	if err != nil {
		return nil, err
	}
	var rows []*models.Account
	if err := s.st.DB.WithContext(ctx).Raw(q, args...).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("list children: %w", err)
	}
	out := make(map[int64]*Page, len(parentIDs))
	for _, id := range parentIDs {
		out[id] = &Page{}
	}
	for _, a := range rows {
		p := out[*a.ParentID]
		if len(p.Accounts) == first {
			p.HasNext = true
			continue
		}
		p.Accounts = append(p.Accounts, a)
	}
	return out, nil
}

// Summary is the part of an account that tree listings show: the columns
// of Account without its timestamps, tags and freeze details.
type Summary struct {
	ID, ParentID int64
	Kind         models.AccountKind
	Name         string
	Email, Phone *string
	Currency     string
	Status       models.AccountStatus
	// Depth is the tier (see models.Account.Tier).
	Depth int
}

// SummaryPage is one keyset page of account summaries.
type SummaryPage struct {
	Accounts []Summary
	HasNext  bool
}

// summaryColumns are the columns of Summary, in its Scan order.
const summaryColumns = "a.id, a.parent_id, a.kind, a.name, a.email, a.phone, a.currency, a.status, a.depth"

// ChildSummaries is ChildrenPages for summaries: the same pages, read with
// the summary's columns only and scanned without reflection (large trees
// are read this way, thousands of accounts an answer).
func (s *Service) ChildSummaries(ctx context.Context, parentIDs []int64, f ChildFilter, first int, afterID int64) (map[int64]*SummaryPage, error) {
	q, args, err := childrenPageSQL(ctx, summaryColumns, parentIDs, f, first, afterID)
	if err != nil {
		return nil, err
	}
	rows, err := s.st.DB.WithContext(ctx).Raw(q, args...).Rows()
	if err != nil {
		return nil, fmt.Errorf("list children: %w", err)
	}
	defer rows.Close()
	out := make(map[int64]*SummaryPage, len(parentIDs))
	for _, id := range parentIDs {
		out[id] = &SummaryPage{}
	}
	var kind, status string
	for rows.Next() {
		var a Summary
		if err := rows.Scan(&a.ID, &a.ParentID, &kind, &a.Name, &a.Email, &a.Phone, &a.Currency, &status, &a.Depth); err != nil {
			return nil, fmt.Errorf("list children: %w", err)
		}
		a.Kind, a.Status = models.AccountKind(kind), models.AccountStatus(status)
		p := out[a.ParentID]
		if len(p.Accounts) == first {
			p.HasNext = true
			continue
		}
		if p.Accounts == nil {
			p.Accounts = make([]Summary, 0, first)
		}
		p.Accounts = append(p.Accounts, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list children: %w", err)
	}
	return out, nil
}

// GetSummary reads one account's summary through the caller's scope
// (NOT_FOUND outside it), without the reflection of a full row.
func (s *Service) GetSummary(ctx context.Context, id int64) (Summary, error) {
	sc, err := ScopeOf(ctx)
	if err != nil {
		return Summary{}, err
	}
	where, args := sc.SQL("a.path")
	rows, err := s.st.DB.WithContext(ctx).Raw(`SELECT `+summaryColumns+` FROM accounts a WHERE a.id = ? AND `+where, append([]any{id}, args...)...).Rows()
	if err != nil {
		return Summary{}, fmt.Errorf("load account %d: %w", id, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return Summary{}, fmt.Errorf("load account %d: %w", id, err)
		}
		return Summary{}, NotFound("account")
	}
	var (
		a            Summary
		parent       *int64
		kind, status string
	)
	if err := rows.Scan(&a.ID, &parent, &kind, &a.Name, &a.Email, &a.Phone, &a.Currency, &status, &a.Depth); err != nil {
		return Summary{}, fmt.Errorf("load account %d: %w", id, err)
	}
	a.Kind, a.Status = models.AccountKind(kind), models.AccountStatus(status)
	if parent != nil {
		a.ParentID = *parent
	}
	return a, rows.Err()
}

// SummaryAndChildren reads one account through the caller's scope
// (NOT_FOUND outside it) together with one page of its children, in one
// statement: the root of a tree listing and its first level.
func (s *Service) SummaryAndChildren(ctx context.Context, id int64, f ChildFilter, first int, afterID int64) (Summary, *SummaryPage, error) {
	sc, err := ScopeOf(ctx)
	if err != nil {
		return Summary{}, nil, err
	}
	if err := ValidatePage(first); err != nil {
		return Summary{}, nil, err
	}
	where, args := childWhere(sc, f)
	rootScope, rootArgs := sc.SQL("r.path")
	// The children's columns come first (as in ChildSummaries), then the
	// root's; a root without children in the page is one row of NULL
	// children's columns.
	q := `SELECT c.*, r.id, r.parent_id, r.kind, r.name, r.email, r.phone, r.currency, r.status, r.depth
		FROM accounts r LEFT JOIN LATERAL (
			SELECT ` + summaryColumns + ` FROM accounts a
			WHERE a.parent_id = r.id AND a.id > ? AND ` + where + `
			ORDER BY a.id LIMIT ?
		) c ON TRUE
		WHERE r.id = ? AND ` + rootScope + ` ORDER BY c.id`
	all := append(append([]any{afterID}, args...), first+1, id)
	all = append(all, rootArgs...)
	rows, err := s.st.DB.WithContext(ctx).Raw(q, all...).Rows()
	if err != nil {
		return Summary{}, nil, fmt.Errorf("load account %d and its children: %w", id, err)
	}
	defer rows.Close()
	var (
		root  Summary
		found bool
		page  = &SummaryPage{Accounts: make([]Summary, 0, first)}
	)
	for rows.Next() {
		var (
			c                              Summary
			cID, cParent                   *int64
			cKind, cName, cCurrency, cStat *string
			cDepth                         *int
			rParent                        *int64
			rKind, rStatus                 string
		)
		if err := rows.Scan(&cID, &cParent, &cKind, &cName, &c.Email, &c.Phone, &cCurrency, &cStat, &cDepth,
			&root.ID, &rParent, &rKind, &root.Name, &root.Email, &root.Phone, &root.Currency, &rStatus, &root.Depth); err != nil {
			return Summary{}, nil, fmt.Errorf("load account %d and its children: %w", id, err)
		}
		found = true
		root.Kind, root.Status = models.AccountKind(rKind), models.AccountStatus(rStatus)
		if rParent != nil {
			root.ParentID = *rParent
		}
		if cID == nil {
			continue
		}
		if len(page.Accounts) == first {
			page.HasNext = true
			continue
		}
		c.ID, c.ParentID, c.Kind, c.Name, c.Currency, c.Status, c.Depth = *cID, *cParent, models.AccountKind(*cKind), *cName, *cCurrency, models.AccountStatus(*cStat), *cDepth
		page.Accounts = append(page.Accounts, c)
	}
	if err := rows.Err(); err != nil {
		return Summary{}, nil, fmt.Errorf("load account %d and its children: %w", id, err)
	}
	if !found {
		return Summary{}, nil, NotFound("account")
	}
	return root, page, nil
}

// childrenPageSQL is the statement of ChildrenPages and ChildSummaries: one
// keyset page (first+1 rows, to know whether more follow) of each parent's
// children, selecting cols of accounts a, ordered by parent and id.
func childrenPageSQL(ctx context.Context, cols string, parentIDs []int64, f ChildFilter, first int, afterID int64) (string, []any, error) {
	sc, err := ScopeOf(ctx)
	if err != nil {
		return "", nil, err
	}
	if err := ValidatePage(first); err != nil {
		return "", nil, err
	}
	where, args := childWhere(sc, f)
	q := `SELECT c.* FROM unnest(?::bigint[]) AS p(id)
		CROSS JOIN LATERAL (
			SELECT ` + cols + ` FROM accounts a
			WHERE a.parent_id = p.id AND a.id > ? AND ` + where + `
			ORDER BY a.id LIMIT ?
		) c ORDER BY c.parent_id, c.id`
	all := append([]any{store.Int64Array(parentIDs), afterID}, args...)
	all = append(all, first+1)
	return q, all, nil
}

// CountChildren returns the number of direct children matching f for each
// parent id, in one query.
func (s *Service) CountChildren(ctx context.Context, parentIDs []int64, f ChildFilter) (map[int64]int, error) {
	sc, err := ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	where, args := childWhere(sc, f)
	q := `SELECT a.parent_id AS id, count(*) AS n FROM accounts a
		WHERE a.parent_id = ANY(?::bigint[]) AND ` + where + ` GROUP BY a.parent_id`
	var rows []struct {
		ID int64
		N  int
	}
	if err := s.st.DB.WithContext(ctx).Raw(q, append([]any{store.Int64Array(parentIDs)}, args...)...).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("count children: %w", err)
	}
	out := make(map[int64]int, len(parentIDs))
	for _, r := range rows {
		out[r.ID] = r.N
	}
	return out, nil
}

func childWhere(sc Scope, f ChildFilter) (string, []any) {
	conds, args := []string{}, []any{}
	q, a := sc.SQL("a.path")
	conds, args = append(conds, q), append(args, a...)
	if f.Kind != "" {
		conds, args = append(conds, "a.kind = ?"), append(args, f.Kind)
	}
	if f.Status != "" {
		conds, args = append(conds, "a.status = ?"), append(args, f.Status)
	}
	if f.Search != "" {
		conds, args = append(conds, "a.name ILIKE ?"), append(args, "%"+likeEscape(f.Search)+"%")
	}
	if f.TagKey != "" {
		conds, args = append(conds, "a.tags @> jsonb_build_object(?::text, ?::text)"), append(args, f.TagKey, f.TagValue)
	}
	return strings.Join(conds, " AND "), args
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// ChildFilterFromKey is the inverse of ChildFilter.Key.
func ChildFilterFromKey(key string) ChildFilter {
	parts := strings.SplitN(key, "\x00", 5)
	for len(parts) < 5 {
		parts = append(parts, "")
	}
	return ChildFilter{Kind: models.AccountKind(parts[0]), Status: models.AccountStatus(parts[1]), Search: parts[2],
		TagKey: parts[3], TagValue: parts[4]}
}
