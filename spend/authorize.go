package spend

import (
	"context"
	"fmt"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/store"
)

// AuthorizeIngest decides whether the caller may ingest records for the
// given customers, before any record is read. Only the platform's billing
// pipeline (a platform user with ADMIN or FINANCE) ingests. A partner or
// customer naming an account outside its scope gets NOT_FOUND, like
// everywhere else, so the answer never reveals that the account exists; one
// naming only accounts it can see gets FORBIDDEN.
func (s *Service) AuthorizeIngest(ctx context.Context, customerIDs []int64) error {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return err
	}
	if !sc.Principal().IsPlatform() && len(customerIDs) > 0 {
		q, args := sc.SQL("path")
		var visible int64
		err := s.st.DB.WithContext(ctx).Raw(`SELECT count(*) FROM accounts WHERE id = ANY(?::bigint[]) AND `+q,
			append([]any{store.Int64Array(dedupe(customerIDs))}, args...)...).Scan(&visible).Error
		if err != nil {
			return fmt.Errorf("authorize ingest: %w", err)
		}
		if visible < int64(len(dedupe(customerIDs))) {
			return accounts.NotFound("account")
		}
	}
	if !sc.Principal().IsPlatform() {
		return apperr.Forbiddenf("only the platform's billing pipeline records expenditures")
	}
	return sc.Require(accounts.PermFinance)
}

func dedupe(ids []int64) []int64 {
	seen := make(map[int64]bool, len(ids))
	out := make([]int64, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
