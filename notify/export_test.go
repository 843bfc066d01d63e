package notify

// SetAfterSend makes Deliver call f after a provider accepted a message and
// before recording it; an error from f stops Deliver there, as a worker
// dying at that point would.
func SetAfterSend(s *Service, f func() error) { s.afterSend = f }
