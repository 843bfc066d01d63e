package spend_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"partnerd/models"
	"partnerd/spend"
)

// mixedRequest is one request with every kind of record, externalIds
// prefixed with p (except p-1 and p-2, stored before the request).
func mixedRequest(f *fixture, p string) []spend.Record {
	c1, c2, c3 := f.C1.Account.ID, f.C2.Account.ID, f.C3.Account.ID
	sub := rec(p+"-ok-2", c3, now.Add(4*time.Minute).Format(time.RFC3339), "3", "3")
	sub.BillingMode = models.Subscription
	conflict := rec("p-2", c2, "2026-03-02T00:00:00Z", "2", "2")
	conflict.Region = "cn-south-1"
	return []spend.Record{
		rec(p+"-ok-1", c1, "2026-03-01T00:00:00Z", "10", "8"),                       // 0
		rec(p+"-unknown", 999999, "2026-03-01T00:00:00Z", "1", "1"),                 // 1 unknown customer
		rec(p+"-partner", f.R1.Account.ID, "2026-03-01T00:00:00Z", "1", "1"),        // 2 a reseller
		rec(p+"-negative", c1, "2026-03-01T00:00:00Z", "-1", "-1"),                  // 3
		rec(p+"-actual", c1, "2026-03-01T00:00:00Z", "1", "2"),                      // 4 actual > list
		rec(p+"-future", c1, now.Add(6*time.Minute).Format(time.RFC3339), "1", "1"), // 5
		sub, // 6 within the clock tolerance, prepaid
		rec(p+"-ok-1", c1, "2026-03-02T00:00:00Z", "11", "8"),             // 7 repeated, other content
		rec(p+"-ok-3", f.P1.Account.ID, "2026-03-01T00:00:00Z", "5", "0"), // 8 personal account
		rec("p-1", c1, "2026-03-01T00:00:00Z", "1", "1"),                  // 9 stored before: duplicate
		conflict, // 10 stored before with another region: conflict
		rec(p+"-feb", c1, "2026-02-10T00:00:00Z", "4", "4"),             // 11 an issued month: adjustment
		rec(p+"-moved", c1, "2026-03-06T00:00:00Z", "6", "5"),           // 12 after C1 moved to R2
		rec(p+"-unknown", c1, "2026-03-01T00:00:00Z", "1", "1"),         // 13 repeats a rejected record
		rec("p-1", c1, "2026-03-01T00:00:00Z", "1", "1"),                // 14 repeats a duplicate
		rec(p+"-ok-4", c2, "2026-03-03T00:00:00Z", "12.345678", "12.3"), // 15
		rec(p+"-zero", 0, "2026-03-01T00:00:00Z", "1", "1"),             // 16 no such key
		rec(p+"-ok-5", c3, "2026-01-31T16:00:00Z", "0.000001", "0"),     // 17 February in Beijing
	}
}

// TestIngest_DirectAndStagedAgree sends the same mixed request down both
// paths, the direct one in batches of 3 (so repeats and stored records span
// batches): the results, the stored rows (owner at usage time, month,
// adjustment flag) and the events are the same, and the totals match the
// stored records.
func TestIngest_DirectAndStagedAgree(t *testing.T) {
	f := newFixture(t, ts("2026-01-01T00:00:00Z"))
	c1, r1, r2 := f.C1.Account.ID, f.R1.Account.ID, f.R2.Account.ID
	moved := ts("2026-03-05T00:00:00Z")
	if err := f.Store.DB.Exec(`UPDATE account_parent_history SET valid_to = ? WHERE account_id = ? AND valid_to IS NULL`, moved, c1).Error; err != nil {
		t.Fatal(err)
	}
	if err := f.Store.DB.Exec(`INSERT INTO account_parent_history (account_id, parent_id, valid_from) VALUES (?, ?, ?)`, c1, r2, moved).Error; err != nil {
		t.Fatal(err)
	}
	if err := f.Store.DB.Exec(`INSERT INTO issued_bill_months (owner_id, month) VALUES (?, 202602)`, r1).Error; err != nil {
		t.Fatal(err)
	}
	f.Clock.Set(now)
	f.ingest(t, rec("p-1", c1, "2026-03-01T00:00:00Z", "1", "1"), rec("p-2", f.C2.Account.ID, "2026-03-02T00:00:00Z", "2", "2"))

	direct, directPaths := f.service()
	spend.SetBatchSize(direct, 3)
	staged, stagedPaths := f.service()
	spend.ForceStaged(staged)
	events := func() int64 { return f.count(t, `SELECT count(*) FROM outbox WHERE event_type = 'spend.changed'`) }

	before := events()
	dres, err := direct.Ingest(f.Platform.Ctx, ndjsonSource(mixedRequest(f, "d")))
	if err != nil {
		t.Fatal(err)
	}
	directEvents := events() - before
	before = events()
	sres, err := staged.Ingest(f.Platform.Ctx, spend.SliceSource(mixedRequest(f, "s")))
	if err != nil {
		t.Fatal(err)
	}
	stagedEvents := events() - before
	if directPaths.count("direct") != 1 || stagedPaths.count("staged") != 1 {
		t.Fatalf("paths %v and %v, want one direct and one staged", directPaths.paths, stagedPaths.paths)
	}

	wantCounts(t, dres, 7, 1, 1, 9)
	wantCounts(t, sres, dres.Accepted, dres.Duplicates, dres.Conflicts, dres.Rejected)
	if len(dres.Errors) != 10 || len(sres.Errors) != len(dres.Errors) {
		t.Fatalf("errors: direct %+v, staged %+v, want 10 each", dres.Errors, sres.Errors)
	}
	for i, d := range dres.Errors {
		s := sres.Errors[i]
		if d.Index != s.Index || d.Reason != s.Reason || strings.Replace(d.ExternalID, "d-", "s-", 1) != s.ExternalID {
			t.Errorf("error %d: direct %+v, staged %+v", i, d, s)
		}
	}
	if r := dres.Errors[6]; r.Index != 10 || !strings.Contains(r.Reason, "different region;") {
		t.Errorf("error 6 = %+v, want the conflict at index 10 naming region only", r)
	}
	for _, want := range map[int]string{7: "index 0", 13: "index 1", 14: "index 9"} {
		found := false
		for _, e := range dres.Errors {
			found = found || strings.Contains(e.Reason, want)
		}
		if !found {
			t.Errorf("no error mentions %q: %+v", want, dres.Errors)
		}
	}
	for _, ext := range []string{"ok-1", "ok-2", "ok-3", "feb", "moved", "ok-4", "ok-5"} {
		d, s := f.stored(t, "d-"+ext), f.stored(t, "s-"+ext)
		if d.CustomerID != s.CustomerID || d.OwnerID != s.OwnerID || d.Month != s.Month || d.Adjustment != s.Adjustment ||
			!d.ListAmount.Equal(s.ListAmount) || !d.ActualAmount.Equal(s.ActualAmount) {
			t.Errorf("%s stored as %+v on the direct path, %+v on the staged one", ext, d, s)
		}
	}
	if got := f.stored(t, "d-feb"); !got.Adjustment || got.OwnerID != r1 || got.Month != 202602 {
		t.Errorf("d-feb stored as %+v, want an adjustment of R1's February", got)
	}
	if got := f.stored(t, "d-moved"); got.OwnerID != r2 {
		t.Errorf("d-moved owned by %d, want R2 %d", got.OwnerID, r2)
	}
	if got := f.stored(t, "d-ok-5"); got.Month != 202602 || !got.ListAmount.Equal(dec("0.000001")) {
		t.Errorf("d-ok-5 stored as %+v, want February with list 0.000001", got)
	}
	if directEvents != stagedEvents || directEvents != 6 {
		t.Errorf("spend.changed events: %d direct, %d staged, want 6 each", directEvents, stagedEvents)
	}
	f.consistentTotals(t)
}

// TestIngest_RepeatAcrossBatchesNamesTheFirst: with batches of two, a
// repeat is told and named across batches, and the first occurrence is the
// one stored.
func TestIngest_RepeatAcrossBatchesNamesTheFirst(t *testing.T) {
	f := newFixture(t, now)
	svc, _ := f.service()
	spend.SetBatchSize(svc, 2)
	c1 := f.C1.Account.ID
	res, err := svc.Ingest(f.Platform.Ctx, spend.SliceSource([]spend.Record{
		rec("rb-1", c1, "2026-03-01T00:00:00Z", "1", "1"),
		rec("rb-2", c1, "2026-03-01T00:00:00Z", "2", "2"),
		rec("rb-3", c1, "2026-03-01T00:00:00Z", "3", "3"),
		rec("rb-4", c1, "2026-03-01T00:00:00Z", "4", "4"),
		rec("rb-1", c1, "2026-03-01T00:00:00Z", "5", "5"),
	}))
	if err != nil {
		t.Fatal(err)
	}
	wantCounts(t, res, 4, 0, 0, 1)
	if len(res.Errors) != 1 || res.Errors[0].Index != 4 || !strings.Contains(res.Errors[0].Reason, "index 0") {
		t.Errorf("errors %+v, want index 4 naming index 0", res.Errors)
	}
	if got := f.stored(t, "rb-1"); !got.ListAmount.Equal(dec("1")) {
		t.Errorf("rb-1 stored with list %s, want the first occurrence's 1", got.ListAmount)
	}
	if tot := f.totals(t, c1, 202603); !tot.ListTotal.Equal(dec("10")) || tot.Records != 4 {
		t.Errorf("totals %+v, want 10 over 4 records", tot)
	}
}

// TestIngest_KeepsTheFirst1000Errors: the errors are the first thousand in
// request order, rejections and conflicts interleaved, while the counts stay
// exact.
func TestIngest_KeepsTheFirst1000Errors(t *testing.T) {
	f := newFixture(t, now)
	c1 := f.C1.Account.ID
	svc, _ := f.service()
	spend.SetBatchSize(svc, 700)
	var stored, recs []spend.Record
	for i := range 1800 {
		r := rec(fmt.Sprintf("k-%04d", i), c1, "2026-03-01T00:00:00Z", "2", "1")
		switch i % 3 {
		case 0: // stored before with other content: a conflict
			s := r
			s.List = dec("3")
			stored = append(stored, s)
		case 1: // rejected
			r.Actual = dec("5")
		}
		recs = append(recs, r)
	}
	f.ingest(t, stored...)
	res, err := svc.Ingest(f.Platform.Ctx, ndjsonSource(recs))
	if err != nil {
		t.Fatal(err)
	}
	wantCounts(t, res, 600, 0, 600, 600)
	if len(res.Errors) != 1000 {
		t.Fatalf("%d errors kept, want 1000", len(res.Errors))
	}
	for i, e := range res.Errors {
		if want := i/2*3 + i%2; e.Index != want {
			t.Fatalf("error %d is at index %d, want %d", i, e.Index, want)
		}
	}
}

// TestIngest_StoredAtTheBoundsOfABatch: the look-up of stored externalIds
// skips the probes when none is stored between a batch's least and greatest
// externalId; a stored one at either bound, or between them, is still found.
func TestIngest_StoredAtTheBoundsOfABatch(t *testing.T) {
	f := newFixture(t, now)
	c1 := f.C1.Account.ID
	f.ingest(t, rec("b-5", c1, "2026-03-01T00:00:00Z", "1", "1"), rec("d-5", c1, "2026-03-01T00:00:00Z", "1", "1"),
		rec("f-5", c1, "2026-03-01T00:00:00Z", "1", "1"))
	svc, paths := f.service()
	spend.SetBatchSize(svc, 2)
	res, err := svc.Ingest(f.Platform.Ctx, spend.SliceSource([]spend.Record{
		rec("a-1", c1, "2026-03-01T00:00:00Z", "1", "1"), rec("b-5", c1, "2026-03-01T00:00:00Z", "1", "1"), // stored at the top
		rec("d-5", c1, "2026-03-01T00:00:00Z", "2", "1"), rec("e-1", c1, "2026-03-01T00:00:00Z", "1", "1"), // at the bottom, other content
		rec("c-1", c1, "2026-03-01T00:00:00Z", "1", "1"), rec("c-9", c1, "2026-03-01T00:00:00Z", "1", "1"), // none between
		rec("a-9", c1, "2026-03-01T00:00:00Z", "1", "1"), rec("z-1", c1, "2026-03-01T00:00:00Z", "1", "1"), // stored ones between, not these
		rec("e-9", c1, "2026-03-01T00:00:00Z", "1", "1"), rec("f-5", c1, "2026-03-01T00:00:00Z", "1", "1"), // stored at the top again
	}))
	if err != nil {
		t.Fatal(err)
	}
	wantCounts(t, res, 7, 2, 1, 0)
	if paths.count("direct") != 1 { // a stored record the look-up missed would fail the COPY and be replayed
		t.Errorf("paths %v, want the direct path alone", paths.paths)
	}
	if len(res.Errors) != 1 || res.Errors[0].Index != 2 {
		t.Errorf("errors %+v, want the conflict at index 2", res.Errors)
	}
	if tot := f.totals(t, c1, 202603); tot.Records != 10 {
		t.Errorf("totals count %d records, want 10", tot.Records)
	}
}
