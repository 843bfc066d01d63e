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
		ids := dedupe(customerIDs)
		q, args := sc.SQL("path")
		var visible int64
		err := s.st.DB.WithContext(ctx).Raw(`SELECT count(*) FROM accounts WHERE id = ANY(?::bigint[]) AND `+q,
			append([]any{store.Int64Array(ids)}, args...)...).Scan(&visible).Error
		if err != nil {
			return fmt.Errorf("authorize ingest: %w", err)
		}
		if visible < int64(len(ids)) {
			return accounts.NotFound("account")
		}
	}
	if !sc.Principal().IsPlatform() {
		return apperr.Forbiddenf("only the platform's billing pipeline records expenditures")
	}
	return sc.Require(accounts.PermFinance)
}

// IngestRecords ingests a list of records (the GraphQL way in): the caller
// is authorized against the customers it names first (AuthorizeIngest), so
// naming a foreign account answers NOT_FOUND before anything else, then the
// records go through Ingest like a stream.
func (s *Service) IngestRecords(ctx context.Context, recs []Record) (*Result, error) {
	customers := make([]int64, len(recs))
	for i, r := range recs {
		customers[i] = r.CustomerID
	}
	if err := s.AuthorizeIngest(ctx, customers); err != nil {
		return nil, err
	}
	return s.Ingest(ctx, SliceSource(recs))
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
