package guard_test

import (
	"sort"
	"sync"
	"testing"
	"time"

	"partnerd/models"
)

// BenchmarkAuthorize is one purchase decision through the service (scope
// check and the guard row, one query), from parallel callers; it reports
// the p99 latency. cmd/partnerbench measures it over HTTP at 100,000
// customers.
func BenchmarkAuthorize(b *testing.B) {
	f := newFixture(b)
	c := f.C1.Account.ID
	f.fund(b, "10000")
	f.budget(b, f.R1, c, models.BudgetMonthly, "1000", "")
	f.unfreeze(b, f.R1, c)
	modes := []models.BillingMode{models.PayPerUse, models.Subscription, models.ReservedInstance}
	var mu sync.Mutex
	var lat []time.Duration
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		i := 0
		for pb.Next() {
			t0 := time.Now()
			if _, err := f.guard.Authorize(f.R1.Ctx, c, modes[i%3], dec("12.34")); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
			i++
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
}
