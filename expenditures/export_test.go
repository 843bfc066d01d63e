package expenditures

// SetFetchSize sets how many rows an export fetches from its cursor at a
// time (tests cross fetch boundaries with small ones).
func SetFetchSize(s *Service, n int) { s.fetchSize = n }

// SetOnFetch runs fn before each fetch of an export's cursor.
func SetOnFetch(s *Service, fn func()) { s.onFetch = fn }
