package billing_test

import (
	"context"
	"slices"
	"testing"

	"partnerd/partitions"
	"partnerd/store/storetest"
)

// The bill run of a month reads only that month's partition of the
// expenditure records (issue 12, point 3), on its first generation and on
// regeneration.
func TestBillRun_ReadsOnlyItsMonthsPartition(t *testing.T) {
	f := september(t)
	if _, err := partitions.New(f.Store, partitions.Options{}, nil).Maintain(context.Background()); err != nil {
		t.Fatal(err)
	}
	plans := storetest.WatchPlans(t, f.Store, "expenditures")
	for _, run := range []string{"first generation", "regeneration"} {
		plans.Start()
		if _, err := f.svc.GeneratePartnerBills(f.Platform.Ctx, month("2026-09")); err != nil {
			t.Fatalf("%s: %v", run, err)
		}
		got := plans.Stop()
		if len(got) == 0 {
			t.Fatalf("%s: no statement read expenditures", run)
		}
		for _, p := range got {
			if p.Err != nil {
				t.Fatalf("%s: plan %s: %v", run, p.SQL, p.Err)
			}
			if !slices.Equal(p.Partitions, []string{"expenditures_p202609"}) {
				t.Errorf("%s reads %v, want only expenditures_p202609:\n%s", run, p.Partitions, p.SQL)
			}
		}
	}
	if d1 := f.bill(t, f.D1.Account.ID, "2026-09"); d1.Records != 4 {
		t.Fatalf("D1's bill counts %d records, want 4", d1.Records)
	}
}
