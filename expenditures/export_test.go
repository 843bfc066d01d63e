package expenditures

import "context"

// SetFetchSize sets how many rows an export fetches from its cursor at a
// time (tests cross fetch boundaries with small ones).
func SetFetchSize(s *Service, n int) { s.fetchSize = n }

// SetOnFetch runs fn before each fetch of an export's cursor.
func SetOnFetch(s *Service, fn func()) { s.onFetch = fn }

// SummarySQL returns the summary query of f grouped by g, for EXPLAIN.
func SummarySQL(ctx context.Context, s *Service, g GroupBy, f Filter) (string, []any, error) {
	sel, err := s.resolve(ctx, f)
	if err != nil {
		return "", nil, err
	}
	q, args := s.summaryQuery(sel, g, false)
	return q, args, nil
}

// PageSQL returns the query of the page of f after the record afterID (0:
// the first page), for EXPLAIN.
func PageSQL(ctx context.Context, s *Service, f Filter, first int, afterID int64) (string, []any, error) {
	sel, err := s.resolve(ctx, f)
	if err != nil {
		return "", nil, err
	}
	var after *position
	if afterID != 0 {
		var pos position
		if err := s.st.DB.WithContext(ctx).Raw(`SELECT month, usage_at, id FROM expenditures WHERE id = ?`, afterID).Scan(&pos).Error; err != nil {
			return "", nil, err
		}
		after = &pos
	}
	q, args := pageQuery(sel, first, after)
	return q, args, nil
}

// RecordsSQL returns the cursor query of a records export of f, for EXPLAIN.
func RecordsSQL(ctx context.Context, s *Service, f Filter) (string, []any, error) {
	e, err := s.PrepareExport(ctx, ExportRecords, "", f)
	if err != nil {
		return "", nil, err
	}
	q, args := e.recordsQuery()
	return q, args, nil
}
