package guard_test

import (
	"sync"
	"testing"
	"time"

	"partnerd/guard"
	"partnerd/models"
	"partnerd/store"
)

type guardRow struct {
	Status         string
	CreditLimit    string
	ExemptPostpaid bool
	Month          int
	MonthList      string
	MonthActual    string
	BudgetAmount   string
	OneTimeSpent   string
}

func readRow(t testing.TB, st *store.Store, id int64) guardRow {
	t.Helper()
	var r guardRow
	must(t, "guard row", st.DB.Raw(`SELECT status, credit_limit::text, exempt_postpaid, month, month_list::text, month_actual::text,
		coalesce(budget_amount::text, '') AS budget_amount, one_time_spent::text FROM purchase_guards WHERE customer_id = ?`, id).Scan(&r).Error)
	return r
}

// Concurrent credit moves, ingestion and budget changes leave the guard row
// equal to a recomputation from its inputs: no change is lost to a stale
// snapshot.
func TestSync_ConcurrentChangesLeaveTheRowCurrent(t *testing.T) {
	f := newFixture(t)
	c := f.C1.Account.ID
	f.fund(t, "100000")
	f.budget(t, f.R1, c, models.BudgetOneTime, "50000", "")
	f.clock.Advance(time.Second)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(3)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				f.ingest(t, c, models.Subscription, "3.5", f.clock.Now())
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				if _, err := f.credit.Reverse(f.R1.Ctx, c, dec("1")); err != nil {
					t.Error(err)
				}
				if _, err := f.credit.Allocate(f.R1.Ctx, c, dec("0.5")); err != nil {
					t.Error(err)
				}
			}
		}()
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				_, err := f.credit.SetExemption(f.R1.Ctx, c, (w+i)%2 == 0, false)
				if err != nil {
					t.Error(err)
				}
			}
		}(w)
	}
	wg.Wait()
	got := readRow(t, f.Store, c)
	must(t, "resync", f.Store.InTx(bg(), func(tx *store.Tx) error { return guard.Sync(tx, shanghai, c) }))
	want := readRow(t, f.Store, c)
	if got != want {
		t.Fatalf("guard row after concurrent changes\n got %+v\nwant %+v", got, want)
	}
	if got.CreditLimit != "99980.000000" || got.MonthList != "140.000000" || got.OneTimeSpent != "140.000000" {
		t.Fatalf("row %+v: want limit 99980, 140 spent", got)
	}
}
