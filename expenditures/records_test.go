package expenditures_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/expenditures"
	"partnerd/spend"
)

// Paging D1's records while the pipeline keeps ingesting — records before
// the cursor (late ones), after it and in other months, for D1's customers
// and others — returns every record that existed when paging began exactly
// once, never one twice, always in usage-time order.
func TestPage_NoDuplicatesOrGapsWhileRecordsArrive(t *testing.T) {
	f := newFixture(t, ts("2026-08-31T00:00:00Z"))
	tr := f.Tree
	mine := []int64{tr.C1.Account.ID, tr.C2.Account.ID, tr.C3.Account.ID}
	everyone := append(mine, tr.C4.Account.ID, tr.C5.Account.ID, tr.P1.Account.ID)
	from, to := ts("2026-06-25T00:00:00Z"), ts("2026-08-30T00:00:00Z")
	f.ingestAt(t, ts("2026-08-31T00:00:00Z"), randomRecords(7, "start", 300, everyone, from, to)...)
	// Several records at the same usage time: the ID orders them.
	same := []spend.Record{}
	for i := range 5 {
		same = append(same, rec(fmt.Sprintf("same-%d", i), tr.C2.Account.ID, "2026-07-15T12:00:00Z", "1", "1"))
	}
	f.ingestAt(t, ts("2026-08-31T00:00:00Z"), same...)
	fl := expenditures.Filter{Period: period("2026-06", "2026-08")}
	before, err := f.Exp.Count(tr.D1.Ctx, fl)
	if err != nil {
		t.Fatal(err)
	}
	existing := map[string]bool{}
	{
		var after int64
		for {
			p, err := f.Exp.Page(tr.Platform.Ctx, expenditures.Filter{Period: fl.Period, PartnerID: tr.D1.Account.ID}, 500, after)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range p.Records {
				existing[r.ExternalID] = true
				after = r.ID
			}
			if !p.HasNext {
				break
			}
		}
	}
	if len(existing) != before || before < 100 {
		t.Fatalf("%d records listed by the platform for D1, %d counted", len(existing), before)
	}

	// A writer keeps ingesting in the background, and between pages the test
	// adds late records on both sides of the cursor for good measure.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			recs := randomRecords(uint64(100+i), fmt.Sprintf("bg%d", i), 20, everyone, from, to)
			if _, err := f.Spend.Ingest(f.Platform.Ctx, spend.SliceSource(recs)); err != nil {
				t.Errorf("background ingest: %v", err)
				return
			}
		}
	}()
	seen := map[string]int{}
	var after int64
	var last *expenditures.Record
	pages := 0
	for {
		p, err := f.Exp.Page(tr.D1.Ctx, fl, 7, after)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range p.Records {
			seen[r.ExternalID]++
			if last != nil && !(r.MonthKey > last.MonthKey || r.MonthKey == last.MonthKey &&
				(r.UsageAt.After(last.UsageAt) || r.UsageAt.Equal(last.UsageAt) && r.ID > last.ID)) {
				t.Errorf("out of order: %s (%v, %d) after %s (%v, %d)", r.ExternalID, r.UsageAt, r.ID, last.ExternalID, last.UsageAt, last.ID)
			}
			last, after = r, r.ID
		}
		if !p.HasNext {
			break
		}
		if last != nil {
			f.ingestAt(t, ts("2026-08-31T00:00:00Z"),
				rec(fmt.Sprintf("late-%d", pages), tr.C1.Account.ID, last.UsageAt.Add(-time.Hour).Format(time.RFC3339), "1", "1"),
				rec(fmt.Sprintf("ahead-%d", pages), tr.C3.Account.ID, last.UsageAt.Add(time.Hour).Format(time.RFC3339), "1", "1"))
		}
	}
	close(stop)
	wg.Wait()
	for ext, n := range seen {
		if n > 1 {
			t.Errorf("%s returned %d times", ext, n)
		}
	}
	for ext := range existing {
		if seen[ext] != 1 {
			t.Errorf("%s, there before paging began, was returned %d times", ext, seen[ext])
		}
	}
	if pages < 40 {
		t.Errorf("only %d pages", pages)
	}
	after2, err := f.Exp.Count(tr.D1.Ctx, fl)
	if err != nil || after2 <= before {
		t.Errorf("count after the inserts: %d (%v), before %d", after2, err, before)
	}
}

// Pages narrowed to a customer, a product and a tag hold exactly the
// matching records; a tag filter matches the tags a record arrived with.
func TestPage_FiltersByCustomerProductAndTag(t *testing.T) {
	f := newFixture(t, ts("2026-09-10T00:00:00Z"))
	tr := f.Tree
	c1, c2 := tr.C1.Account.ID, tr.C2.Account.ID
	if _, err := tr.Accounts.SetTags(tr.Platform.Ctx, c1, []accounts.Tag{{Key: "costCenter", Value: "CC-7"}}); err != nil {
		t.Fatal(err)
	}
	rds := rec("c1-rds-tagged", c1, "2026-09-02T00:00:00Z", "3", "3")
	rds.ProductCode = "rds"
	f.ingestAt(t, ts("2026-09-10T00:00:00Z"), rec("c1-tagged", c1, "2026-09-01T00:00:00Z", "1", "1"), rds,
		rec("c2", c2, "2026-09-01T00:00:00Z", "2", "2"))
	if _, err := tr.Accounts.SetTags(tr.Platform.Ctx, c1, []accounts.Tag{{Key: "costCenter", Value: "CC-8"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Accounts.SetTags(tr.Platform.Ctx, c2, []accounts.Tag{{Key: "costCenter", Value: "CC-7"}}); err != nil {
		t.Fatal(err)
	}
	f.ingestAt(t, ts("2026-09-10T00:00:00Z"), rec("c1-retagged", c1, "2026-09-03T00:00:00Z", "4", "4"),
		rec("c2-tagged", c2, "2026-09-03T00:00:00Z", "5", "5"))
	sep := period("2026-09", "2026-09")
	for _, c := range []struct {
		name string
		f    expenditures.Filter
		want []string
	}{
		{"CC-7", expenditures.Filter{Period: sep, Tag: &accounts.Tag{Key: "costCenter", Value: "CC-7"}}, []string{"c1-rds-tagged", "c1-tagged", "c2-tagged"}},
		{"CC-8", expenditures.Filter{Period: sep, Tag: &accounts.Tag{Key: "costCenter", Value: "CC-8"}}, []string{"c1-retagged"}},
		{"another key", expenditures.Filter{Period: sep, Tag: &accounts.Tag{Key: "env", Value: "CC-7"}}, nil},
		{"rds", expenditures.Filter{Period: sep, ProductCode: "rds"}, []string{"c1-rds-tagged"}},
		{"C1 and CC-7", expenditures.Filter{Period: sep, CustomerID: c1, Tag: &accounts.Tag{Key: "costCenter", Value: "CC-7"}}, []string{"c1-rds-tagged", "c1-tagged"}},
		{"C2 and ecs", expenditures.Filter{Period: sep, CustomerID: c2, ProductCode: "ecs"}, []string{"c2", "c2-tagged"}},
	} {
		got := f.externalIDs(t, tr.D1, c.f)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
		if n, err := f.Exp.Count(tr.D1.Ctx, c.f); err != nil || n != len(c.want) {
			t.Errorf("%s: count %d, %v", c.name, n, err)
		}
	}
	p, err := f.Exp.Page(tr.D1.Ctx, expenditures.Filter{Period: sep, ProductCode: "rds"}, 10, 0)
	if err != nil || len(p.Records) != 1 {
		t.Fatalf("rds page: %+v %v", p, err)
	}
	r := p.Records[0]
	if r.Tags["costCenter"] != "CC-7" || r.OwnerID != tr.R1.Account.ID || r.Month().String() != "2026-09" || r.ListAmount.String() != "3" ||
		!r.ReceivedAt.Equal(ts("2026-09-10T00:00:00Z")) || r.Adjustment {
		t.Errorf("the record: %+v", r)
	}
	// first: 0 is an empty page that says whether there is more.
	p, err = f.Exp.Page(tr.D1.Ctx, expenditures.Filter{Period: sep}, 0, 0)
	if err != nil || len(p.Records) != 0 || !p.HasNext {
		t.Errorf("first 0: %+v %v", p, err)
	}
	// A cursor from another filter's page is refused.
	_, err = f.Exp.Page(tr.D1.Ctx, expenditures.Filter{Period: sep, ProductCode: "ecs"}, 10, r.ID)
	wantCode(t, "an rds cursor on the ecs pages", err, apperr.Validation)
}
