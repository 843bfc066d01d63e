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
	sc, err := ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := ValidatePage(first); err != nil {
		return nil, err
	}
	where, args := childWhere(sc, f)
	q := `SELECT c.* FROM unnest(?::bigint[]) AS p(id)
		CROSS JOIN LATERAL (
			SELECT a.* FROM accounts a
			WHERE a.parent_id = p.id AND a.id > ? AND ` + where + `
			ORDER BY a.id LIMIT ?
		) c ORDER BY c.parent_id, c.id`
	all := append([]any{store.Int64Array(parentIDs), afterID}, args...)
	all = append(all, first+1)
	var rows []*models.Account
	if err := s.st.DB.WithContext(ctx).Raw(q, all...).Scan(&rows).Error; err != nil {
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
