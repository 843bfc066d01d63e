package spend

// SetBatchSize sets the direct path's batch size (tests cross batch
// boundaries with small ones).
func SetBatchSize(s *Service, n int) { s.batchSize = n }

// SetBeforeCopy runs fn before each COPY of the direct path, after its
// batch was checked against the stored records: a test stores records there
// to lose the race on purpose.
func SetBeforeCopy(s *Service, fn func()) { s.beforeCopy = fn }

// ForceStaged sends every request of s down the staged path.
func ForceStaged(s *Service) { s.staged = true }
