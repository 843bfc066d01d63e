package spend

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/store"
)

// MaxGraphQLBatch is the most records one GraphQL recordExpenditures call
// may carry; bigger loads stream through POST /v1/expenditures.
const MaxGraphQLBatch = 5000

const (
	// maxKeptErrors bounds Result.Errors; the counts stay exact.
	maxKeptErrors = 1000
	// progressEvery is how many records pass between progress log lines.
	progressEvery = 100_000
	// futureTolerance is how far past the store's clock a usage time may
	// lie (clock skew between the pipeline and us) before it is refused.
	futureTolerance = 5 * time.Minute
	// ingestStatementTimeout replaces the store's statement timeout for an
	// ingestion: the COPY lasts as long as the client takes to send the body.
	ingestStatementTimeout = "1h"
	// ingestWorkMem lets the sorts and hashes of a big request (the
	// externalId order of the insert, the in-request duplicate check) run in
	// memory rather than in temporary files. It is per sort or hash node of
	// this transaction only.
	ingestWorkMem = "64MB"
	// directBatch is how many records the direct path judges and copies at
	// a time: big enough that the per-batch statements cost little, small
	// enough that parsing the next batch overlaps the database work of this
	// one.
	directBatch = 20_000
	// lookConnWait bounds the wait of the direct path for a second
	// connection, the one its reads run on while it copies.
	lookConnWait = 100 * time.Millisecond
	// maxReplays bounds the attempts of a replayed request on the staged
	// path that fail on a serialization failure or deadlock.
	maxReplays = 4
)

// RecordError says why one record of a request was not stored: Index is its
// 0-based position in the request.
type RecordError struct {
	Index      int
	ExternalID string
	Reason     string
}

// Result is the outcome of one ingestion request. Every record is counted
// exactly once: Accepted (stored now), Duplicates (its externalId was stored
// before with the same content: ignored), Conflicts (stored before with
// different content: the first version is kept) or Rejected (refused on its
// own, see the reasons in errors.go). Errors lists the conflicts and
// rejections in request order, at most the first 1000. AsOf is the time the
// records were received; running totals state it as their "as of".
type Result struct {
	Accepted, Duplicates, Conflicts, Rejected int
	Errors                                    []RecordError
	AsOf                                      *time.Time
}

// Ingest stores the expenditure records of src in one transaction
// (DOMAIN.md §4, issue 5 points 5–9). Both ways in — GraphQL
// recordExpenditures (SliceSource, at most MaxGraphQLBatch records) and
// POST /v1/expenditures (NDJSON or CSV, streamed) — come through here.
//
// Callers: platform users with ADMIN or FINANCE, i.e. the cloud's billing
// pipeline; anyone else gets FORBIDDEN — a partner or customer too, since
// recording spend touches accounts across the whole tree.
//
// The request is refused as a whole, with nothing stored, when a record is
// malformed (VALIDATION naming its line or record). Otherwise each record is
// judged on its own:
//   - rejected (with its index and reason) when its customer is unknown or is
//     not a CUSTOMER or PERSONAL account, an amount is negative, actual
//     exceeds list, the usage time is more than 5 minutes in the future, or
//     its externalId already appeared earlier in the request;
//   - a duplicate when its externalId is stored with the same content (a
//     replay: nothing changes), a conflict when stored with other content
//     (the first version is kept and the record is reported);
//   - accepted otherwise: stored for the partner that owned the customer at
//     its usage time (the account's parent history; usage before the first
//     history row belongs to the first owner; a personal account's owner is
//     the platform), in the Beijing-time month of its usage time, and flagged
//     as an adjustment when that owner's bill for that month is already
//     issued.
//
// In the same transaction it adds the accepted records to the running
// totals of their customer and month (late records to the month they belong
// to), emits CustomerSpendChanged per customer and month touched,
// re-evaluates those customers' arrears (credit.UpdateArrears, which emits
// ArrearsChanged when one flips) and writes one audit entry with the counts.
//
// How: the source is parsed in a goroutine of its own, in batches, while
// the direct path (direct.go) judges each batch in Go and copies its new
// valid records straight into expenditures. If a concurrent request stores
// one of the same externalIds between the check and the COPY (or the two
// deadlock), the transaction is rolled back and the request replayed on the
// staged path (staged.go), which is safe against that race; a serialization
// failure or deadlock there is retried, up to maxReplays attempts. To be
// replayable, a streamed request is spooled to a temporary file as it is
// read (under 100 bytes a record, removed at the end).
//
// Memory: at most four batches of records (about 50 MB) whatever the size
// of the request, plus the externalIds of the request with the index of
// their first occurrence, to reject and name repeats: about 90 bytes a
// record (measured: a million NDJSON records peak at 135 MB of live heap).
//
// When the replay fails on a serialization failure or deadlock every time,
// the error is returned and store.IsRetryable tells the caller it may send
// the request again; a replay is safe by construction.
func (s *Service) Ingest(ctx context.Context, src Source) (*Result, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	if !sc.Principal().IsPlatform() || sc.Require(accounts.PermFinance) != nil {
		return nil, ErrForbidden
	}
	if ss, ok := src.(*sliceSource); ok && len(ss.recs) > MaxGraphQLBatch {
		return nil, apperr.Invalid("records", "a call records at most %d expenditures, got %d: stream bigger loads to POST /v1/expenditures", MaxGraphQLBatch, len(ss.recs))
	}
	start := time.Now()
	res, path, err := s.ingest(ctx, src)
	if err != nil {
		if _, ok := apperr.As(err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("ingest expenditures: %w", err)
	}
	s.log.InfoContext(ctx, "expenditures ingested", "request_id", store.RequestID(ctx), "path", path,
		"accepted", res.Accepted, "duplicates", res.Duplicates, "conflicts", res.Conflicts,
		"rejected", res.Rejected, "duration", time.Since(start).Round(time.Millisecond).String())
	return res, nil
}

// ingest runs the direct path and, when it lost a race, the replay; path
// says which one stored the request.
func (s *Service) ingest(ctx context.Context, src Source) (res *Result, path string, err error) {
	size := s.batchSize
	if size <= 0 {
		size = directBatch
	}
	f, err := s.startFeed(ctx, src, size)
	if err != nil {
		return nil, "", err
	}
	defer func() {
		if cerr := f.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if !s.staged {
		err = s.st.InCopyTx(ctx, func(tx *store.Tx, cp *store.Copier) error {
			var err error
			res, err = s.ingestDirect(ctx, tx, cp, f)
			return err
		})
		if !errors.Is(err, errRaced) {
			return res, "direct", err
		}
		s.log.InfoContext(ctx, "expenditures ingestion raced a concurrent request: replaying it on the staged path",
			"request_id", store.RequestID(ctx), "cause", err.Error())
	}
	// Read the rest of the request into the spool, outside the transaction
	// (the rolled back one holds no locks any more).
	if err := f.finish(); err != nil {
		return nil, "", err
	}
	for attempt := 1; ; attempt++ {
		src, err := f.replay()
		if err != nil {
			return nil, "", err
		}
		err = s.st.InCopyTx(ctx, func(tx *store.Tx, cp *store.Copier) error {
			var err error
			res, err = s.ingestStaged(ctx, tx, cp, src)
			return err
		})
		if err == nil || !store.IsRetryable(err) || attempt == maxReplays || ctx.Err() != nil {
			return res, "staged", err
		}
		backoff := time.Duration(attempt*attempt)*10*time.Millisecond + time.Duration(rand.IntN(20))*time.Millisecond
		select {
		case <-ctx.Done():
			return nil, "", ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// stepTimer logs, at debug level, how long each step of an ingestion took.
func (s *Service) stepTimer(ctx context.Context) func(step string) {
	t0 := time.Now()
	return func(step string) {
		s.log.DebugContext(ctx, "ingest step", "step", step, "took", time.Since(t0).Round(time.Microsecond).String())
		t0 = time.Now()
	}
}

// mergeErrors merges two lists sorted by index and keeps the first
// maxKeptErrors.
func mergeErrors(a, b []RecordError) []RecordError {
	out := append(append(make([]RecordError, 0, len(a)+len(b)), a...), b...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	if len(out) > maxKeptErrors {
		out = out[:maxKeptErrors]
	}
	return out
}

// addToCustomerTotals and addToOwnerTotals end the upserts of the running
// totals that both ingestion paths make: an existing month's totals grow by
// what the insert brings (never replaced), and the customer upsert returns
// the new totals.
const (
	addToCustomerTotals = `	ON CONFLICT (customer_id, month) DO UPDATE SET
		list_total = t.list_total + EXCLUDED.list_total,
		actual_total = t.actual_total + EXCLUDED.actual_total,
		prepaid_list = t.prepaid_list + EXCLUDED.prepaid_list,
		records = t.records + EXCLUDED.records,
		last_received_at = greatest(t.last_received_at, EXCLUDED.last_received_at)
	RETURNING t.customer_id, t.month, t.list_total, t.actual_total, t.records`
	addToOwnerTotals = `	ON CONFLICT (owner_id, month) DO UPDATE SET
		list_total = o.list_total + EXCLUDED.list_total,
		actual_total = o.actual_total + EXCLUDED.actual_total,
		records = o.records + EXCLUDED.records,
		last_received_at = greatest(o.last_received_at, EXCLUDED.last_received_at)`
)
