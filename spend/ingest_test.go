package spend_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/spend"
)

// now is the store clock of most tests: 2026-03-10 12:00 in Beijing.
var now = ts("2026-03-10T04:00:00Z")

func TestIngest_ReplayIsIdempotent(t *testing.T) {
	f := newFixture(t, now)
	c1, c2 := f.C1.Account.ID, f.C2.Account.ID
	batch := []spend.Record{
		rec("r-1", c1, "2026-03-01T01:00:00Z", "100.00", "80.00"),
		rec("r-2", c1, "2026-03-02T01:00:00Z", "50.5", "50.5"),
		rec("r-3", c2, "2026-03-03T01:00:00Z", "7.123456", "7"),
	}
	first := f.ingest(t, batch...)
	wantCounts(t, first, 3, 0, 0, 0)
	before := f.totals(t, c1, 202603)
	if !before.ListTotal.Equal(dec("150.5")) || !before.ActualTotal.Equal(dec("130.5")) || before.Records != 2 {
		t.Fatalf("C1 totals after the first batch = %+v", before)
	}

	second := f.ingest(t, batch...)
	wantCounts(t, second, 0, 3, 0, 0)
	if len(second.Errors) != 0 {
		t.Errorf("a replay reports errors: %+v", second.Errors)
	}
	after := f.totals(t, c1, 202603)
	if !after.ListTotal.Equal(before.ListTotal) || !after.ActualTotal.Equal(before.ActualTotal) || after.Records != before.Records {
		t.Errorf("C1 totals changed on replay: %+v -> %+v", before, after)
	}
	if n := f.count(t, `SELECT count(*) FROM expenditures`); n != 3 {
		t.Errorf("%d expenditures stored, want 3", n)
	}
	// The replay changed nothing, so it owes no spend event.
	if n := f.count(t, `SELECT count(*) FROM outbox WHERE event_type = 'spend.changed'`); n != 2 {
		t.Errorf("%d spend.changed events, want 2 (C1 and C2, first batch only)", n)
	}
}

func TestIngest_ConflictKeepsFirstVersion(t *testing.T) {
	f := newFixture(t, now)
	c1 := f.C1.Account.ID
	f.ingest(t, rec("x-1", c1, "2026-03-01T00:00:00Z", "10.00", "9.00"))

	res := f.ingest(t,
		rec("x-2", c1, "2026-03-01T00:00:00Z", "1", "1"),
		rec("x-1", c1, "2026-03-01T00:00:00Z", "12.00", "9.00"), // same externalId, other list amount
	)
	wantCounts(t, res, 1, 0, 1, 0)
	if len(res.Errors) != 1 || res.Errors[0].Index != 1 || res.Errors[0].ExternalID != "x-1" ||
		!strings.Contains(res.Errors[0].Reason, "listAmount") || strings.Contains(res.Errors[0].Reason, "actualAmount") {
		t.Fatalf("errors = %+v, want one conflict at index 1 naming listAmount only", res.Errors)
	}
	if got := f.stored(t, "x-1"); !got.ListAmount.Equal(dec("10")) {
		t.Errorf("stored list amount %s, want the first version's 10", got.ListAmount)
	}
	if tot := f.totals(t, c1, 202603); !tot.ListTotal.Equal(dec("11")) || tot.Records != 2 {
		t.Errorf("totals %+v, want list 11 over 2 records", tot)
	}
}

func TestIngest_RejectsPerRecordAndAcceptsTheRest(t *testing.T) {
	f := newFixture(t, now)
	c1, c3 := f.C1.Account.ID, f.C3.Account.ID
	recs := []spend.Record{
		rec("ok-1", c1, "2026-03-01T00:00:00Z", "10", "8"),                           // 0
		rec("bad-unknown", 999999, "2026-03-01T00:00:00Z", "1", "1"),                 // 1 unknown customer
		rec("bad-partner", f.R1.Account.ID, "2026-03-01T00:00:00Z", "1", "1"),        // 2 a reseller
		rec("bad-negative", c1, "2026-03-01T00:00:00Z", "-1", "-1"),                  // 3
		rec("bad-actual", c1, "2026-03-01T00:00:00Z", "1", "2"),                      // 4 actual > list
		rec("bad-future", c1, now.Add(6*time.Minute).Format(time.RFC3339), "1", "1"), // 5
		rec("ok-2", c3, now.Add(4*time.Minute).Format(time.RFC3339), "3", "3"),       // 6 within the clock tolerance
		rec("ok-1", c1, "2026-03-02T00:00:00Z", "10", "8"),                           // 7 repeated externalId
		rec("ok-3", f.P1.Account.ID, "2026-03-01T00:00:00Z", "5", "0"),               // 8 personal account
		rec("bad-zero", 0, "2026-03-01T00:00:00Z", "1", "1"),                         // 9 no such key
	}
	res := f.ingest(t, recs...)
	wantCounts(t, res, 3, 0, 0, 7)
	want := map[int]string{
		1: "unknown customer", 2: "RESELLER", 3: "negative", 4: "greater than list",
		5: "future", 7: "index 0", 9: "unknown customer",
	}
	if len(res.Errors) != len(want) {
		t.Fatalf("errors = %+v, want %d", res.Errors, len(want))
	}
	last := -1
	for _, e := range res.Errors {
		if e.Index <= last {
			t.Errorf("errors not in request order: %+v", res.Errors)
		}
		last = e.Index
		if e.ExternalID != recs[e.Index].ExternalID {
			t.Errorf("error at index %d names %q, want %q", e.Index, e.ExternalID, recs[e.Index].ExternalID)
		}
		if !strings.Contains(e.Reason, want[e.Index]) {
			t.Errorf("reason at index %d = %q, want it to mention %q", e.Index, e.Reason, want[e.Index])
		}
	}
	if got := f.stored(t, "ok-1"); !got.ListAmount.Equal(dec("10")) || got.CustomerID != c1 {
		t.Errorf("ok-1 stored as %+v, want the first occurrence", got)
	}
	if got := f.stored(t, "ok-3"); got.OwnerID != f.Platform.Account.ID {
		t.Errorf("a personal account's record is owned by %d, want the platform %d", got.OwnerID, f.Platform.Account.ID)
	}
	if n := f.count(t, `SELECT count(*) FROM expenditures`); n != 3 {
		t.Errorf("%d expenditures stored, want 3", n)
	}
	var after string
	if err := f.Store.DB.Raw(`SELECT after::text FROM audit_log WHERE action = 'expenditures.ingest'`).Scan(&after).Error; err != nil {
		t.Fatal(err)
	}
	var counts map[string]int
	_ = json.Unmarshal([]byte(after), &counts)
	if counts["records"] != 10 || counts["accepted"] != 3 || counts["rejected"] != 7 {
		t.Errorf("audit after = %s", after)
	}
}

func TestIngest_MonthBoundaryInBeijingTime(t *testing.T) {
	f := newFixture(t, now)
	c1 := f.C1.Account.ID
	res := f.ingest(t,
		rec("jan-last", c1, "2026-01-31T15:59:59Z", "1", "1"),  // 23:59:59 on 31 January in Beijing
		rec("feb-first", c1, "2026-01-31T16:00:00Z", "2", "2"), // 00:00:00 on 1 February in Beijing
		rec("feb-offset", c1, "2026-02-01T00:00:00+08:00", "4", "4"),
	)
	wantCounts(t, res, 3, 0, 0, 0)
	if m := f.stored(t, "jan-last").Month; m != 202601 {
		t.Errorf("2026-01-31T15:59:59Z is in month %d, want 202601", m)
	}
	if m := f.stored(t, "feb-first").Month; m != 202602 {
		t.Errorf("2026-01-31T16:00:00Z is in month %d, want 202602", m)
	}
	if tot := f.totals(t, c1, 202601); !tot.ListTotal.Equal(dec("1")) || tot.Records != 1 {
		t.Errorf("January totals %+v", tot)
	}
	if tot := f.totals(t, c1, 202602); !tot.ListTotal.Equal(dec("6")) || tot.Records != 2 {
		t.Errorf("February totals %+v", tot)
	}
}

func TestIngest_LateRecordUpdatesItsMonth(t *testing.T) {
	f := newFixture(t, now)
	c1 := f.C1.Account.ID
	f.ingest(t, rec("jan-1", c1, "2026-01-10T00:00:00Z", "10", "10"), rec("mar-1", c1, "2026-03-05T00:00:00Z", "1", "1"))
	f.Clock.Set(now.Add(time.Hour))
	res := f.ingest(t, rec("jan-late", c1, "2026-01-20T00:00:00Z", "5", "4"))
	wantCounts(t, res, 1, 0, 0, 0)
	jan := f.totals(t, c1, 202601)
	if !jan.ListTotal.Equal(dec("15")) || !jan.ActualTotal.Equal(dec("14")) || jan.Records != 2 {
		t.Errorf("January totals after the late record %+v, want 15/14 over 2", jan)
	}
	if mar := f.totals(t, c1, 202603); !mar.ListTotal.Equal(dec("1")) || mar.Records != 1 {
		t.Errorf("March totals %+v changed by a January record", mar)
	}
	got, err := f.Spend.MonthTotals(f.Platform.Ctx, []int64{c1}, models.Month{Year: 2026, Month: time.January})
	if err != nil {
		t.Fatal(err)
	}
	if tt := got[c1]; tt.AsOf == nil || !tt.AsOf.Equal(now.Add(time.Hour)) || !tt.List.Equal(dec("15")) {
		t.Errorf("MonthTotals = %+v, want list 15 as of the late record's arrival", tt)
	}
	var ev struct {
		Month, List, Actual string
		Records             int64
	}
	err = f.Store.DB.Raw(`SELECT payload->>'month' AS month, payload->>'list' AS list, payload->>'actual' AS actual, (payload->>'records')::bigint AS records
		FROM outbox WHERE event_type = 'spend.changed' ORDER BY id DESC LIMIT 1`).Scan(&ev).Error
	if err != nil {
		t.Fatal(err)
	}
	if ev.Month != "2026-01" || ev.List != "15.00" || ev.Actual != "14.00" || ev.Records != 2 {
		t.Errorf("last spend.changed = %+v, want January's new totals 15.00/14.00 over 2", ev)
	}
}

func TestIngest_OwnerAtUsageTime(t *testing.T) {
	created := ts("2026-03-01T00:00:00Z")
	f := newFixture(t, created)
	c1, r1, r2 := f.C1.Account.ID, f.R1.Account.ID, f.R2.Account.ID
	moved := ts("2026-03-15T00:00:00Z")
	// A migration to R2 takes effect at moved (the migration issue will do this).
	if err := f.Store.DB.Exec(`UPDATE account_parent_history SET valid_to = ? WHERE account_id = ? AND valid_to IS NULL`, moved, c1).Error; err != nil {
		t.Fatal(err)
	}
	if err := f.Store.DB.Exec(`INSERT INTO account_parent_history (account_id, parent_id, valid_from) VALUES (?, ?, ?)`, c1, r2, moved).Error; err != nil {
		t.Fatal(err)
	}
	f.Clock.Set(ts("2026-03-25T00:00:00Z"))
	res := f.ingest(t,
		rec("before-created", c1, "2026-02-20T00:00:00Z", "1", "1"),
		rec("before-move", c1, "2026-03-14T23:59:59Z", "1", "1"),
		rec("at-move", c1, "2026-03-15T00:00:00Z", "1", "1"),
		rec("after-move", c1, "2026-03-20T00:00:00Z", "1", "1"),
	)
	wantCounts(t, res, 4, 0, 0, 0)
	for ext, want := range map[string]int64{"before-created": r1, "before-move": r1, "at-move": r2, "after-move": r2} {
		if got := f.stored(t, ext).OwnerID; got != want {
			t.Errorf("%s owned by %d, want %d", ext, got, want)
		}
	}
}

func TestIngest_IssuedMonthIsAdjustment(t *testing.T) {
	f := newFixture(t, now)
	c1, r1 := f.C1.Account.ID, f.R1.Account.ID
	if err := f.Store.DB.Exec(`INSERT INTO issued_bill_months (owner_id, month) VALUES (?, 202602)`, r1).Error; err != nil {
		t.Fatal(err)
	}
	f.ingest(t,
		rec("feb", c1, "2026-02-10T00:00:00Z", "1", "1"),
		rec("mar", c1, "2026-03-01T00:00:00Z", "1", "1"),
		rec("feb-other-owner", f.C4.Account.ID, "2026-02-10T00:00:00Z", "1", "1"),
	)
	if !f.stored(t, "feb").Adjustment {
		t.Error("a record for an issued month is not flagged as an adjustment")
	}
	if f.stored(t, "mar").Adjustment || f.stored(t, "feb-other-owner").Adjustment {
		t.Error("a record for a month not issued to its owner is flagged as an adjustment")
	}
	// The running totals still count it in its own month.
	if tot := f.totals(t, c1, 202602); tot.Records != 1 {
		t.Errorf("February totals %+v", tot)
	}
}

func TestIngest_ArrearsEntered(t *testing.T) {
	f := newFixture(t, now)
	c1 := f.C1.Account.ID
	// The credit service is written in parallel; set the limit directly.
	if err := f.Store.DB.Exec(`UPDATE credit_balances SET credit_limit = 100 WHERE account_id = ?`, c1).Error; err != nil {
		t.Fatal(err)
	}
	f.ingest(t, rec("a-1", c1, now.Add(-time.Hour).Format(time.RFC3339), "90", "90"))
	if n := f.count(t, `SELECT count(*) FROM outbox WHERE event_type LIKE 'credit.arrears%'`); n != 0 {
		t.Fatalf("%d arrears events with 90 of 100 used", n)
	}
	f.ingest(t, rec("a-2", c1, now.Add(-time.Minute).Format(time.RFC3339), "60", "60"),
		rec("a-old", c1, "2026-01-05T00:00:00Z", "1000", "1000")) // last month's spend does not count
	var inArrears bool
	if err := f.Store.DB.Raw(`SELECT in_arrears FROM credit_balances WHERE account_id = ?`, c1).Scan(&inArrears).Error; err != nil {
		t.Fatal(err)
	}
	if !inArrears {
		t.Error("C1 spent 150 of a 100 limit this month but is not in arrears")
	}
	var ev struct {
		CustomerID int64  `json:"customerId"`
		Entered    bool   `json:"entered"`
		Available  string `json:"available"`
		Queue      string
	}
	var payload string
	err := f.Store.DB.Raw(`SELECT payload::text FROM outbox WHERE event_type = 'credit.arrears_entered'`).Scan(&payload).Error
	if err != nil || payload == "" {
		t.Fatalf("no credit.arrears_entered event (err %v)", err)
	}
	_ = json.Unmarshal([]byte(payload), &ev)
	if ev.CustomerID != c1 || !ev.Entered || ev.Available != "-50.00" {
		t.Errorf("arrears event %s", payload)
	}
}

func TestIngest_EventsAndAudit(t *testing.T) {
	f := newFixture(t, now)
	c1, c2 := f.C1.Account.ID, f.C2.Account.ID
	f.ingest(t,
		rec("e-1", c1, "2026-03-01T00:00:00Z", "10", "9"),
		rec("e-2", c1, "2026-03-02T00:00:00Z", "10", "9"),
		rec("e-3", c1, "2026-02-02T00:00:00Z", "1", "1"),
		spend.Record{ExternalID: "e-4", CustomerID: c2, ProductCode: "rds", BillingMode: models.Subscription,
			UsageAt: ts("2026-03-03T00:00:00Z"), List: dec("100"), Actual: dec("70")},
	)
	var rows []struct {
		Queue     string
		AccountID int64
		Topics    string
		Payload   string
	}
	if err := f.Store.DB.Raw(`SELECT queue, account_id, topics, payload::text AS payload FROM outbox WHERE event_type = 'spend.changed' ORDER BY id`).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d spend.changed events, want 3 (C1 February, C1 March, C2 March)", len(rows))
	}
	var got []spend.CustomerSpendChanged
	for _, r := range rows {
		var ev spend.CustomerSpendChanged
		if err := json.Unmarshal([]byte(r.Payload), &ev); err != nil {
			t.Fatal(err)
		}
		if r.Queue != "critical" || r.AccountID != ev.CustomerID || r.Topics != accounts.AccountTopic(ev.CustomerID) {
			t.Errorf("event row %+v", r)
		}
		got = append(got, ev)
	}
	want := []spend.CustomerSpendChanged{
		{CustomerID: c1, Month: "2026-02", List: "1.00", Actual: "1.00", Records: 1},
		{CustomerID: c1, Month: "2026-03", List: "20.00", Actual: "18.00", Records: 2},
		{CustomerID: c2, Month: "2026-03", List: "100.00", Actual: "70.00", Records: 1},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if tot := f.totals(t, c2, 202603); !tot.PrepaidList.Equal(dec("100")) {
		t.Errorf("C2 prepaid list %s, want 100 (a subscription)", tot.PrepaidList)
	}
	if tot := f.totals(t, c1, 202603); !tot.PrepaidList.IsZero() {
		t.Errorf("C1 prepaid list %s, want 0 (pay per use only)", tot.PrepaidList)
	}
	if n := f.count(t, `SELECT count(*) FROM audit_log WHERE action = 'expenditures.ingest' AND actor <> 'system'`); n != 1 {
		t.Errorf("%d audit entries attributed to the caller for one request, want 1", n)
	}
}

func TestIngest_CallersAreThePlatformFinance(t *testing.T) {
	f := newFixture(t, now)
	src := func() spend.Source {
		return spend.SliceSource([]spend.Record{rec("p-1", f.C1.Account.ID, "2026-03-01T00:00:00Z", "1", "1")})
	}
	viewer := f.AddUser(t, f.Platform.Account, models.RoleViewer)
	finance := f.AddUser(t, f.Platform.Account, models.RoleFinance)
	for name, ctx := range map[string]context.Context{
		"platform viewer":   viewer.Ctx,
		"distributor admin": f.D1.Ctx,
		"customer admin":    f.C1.Ctx,
	} {
		_, err := f.Spend.Ingest(ctx, src())
		if apperr.CodeOf(err) != apperr.Forbidden {
			t.Errorf("%s: got %v, want FORBIDDEN", name, err)
		}
	}
	if _, err := f.Spend.Ingest(context.Background(), src()); apperr.CodeOf(err) != apperr.Unauthenticated {
		t.Errorf("no principal: got %v, want UNAUTHENTICATED", err)
	}
	f.assertNothingStored(t)
	res, err := f.Spend.Ingest(finance.Ctx, src())
	if err != nil {
		t.Fatal(err)
	}
	wantCounts(t, res, 1, 0, 0, 0)
}

func TestIngest_GraphQLBatchLimit(t *testing.T) {
	f := newFixture(t, now)
	recs := make([]spend.Record, spend.MaxGraphQLBatch+1)
	for i := range recs {
		recs[i] = rec(fmt.Sprintf("b-%d", i), f.C1.Account.ID, "2026-03-01T00:00:00Z", "1", "1")
	}
	_, err := f.Spend.Ingest(f.Platform.Ctx, spend.SliceSource(recs))
	wantCode(t, err, apperr.Validation, "at most 5000")
	f.assertNothingStored(t)
}

func TestIngest_MalformedSliceRecordStoresNothing(t *testing.T) {
	f := newFixture(t, now)
	c1 := f.C1.Account.ID
	bad := rec("m-2", c1, "2026-03-01T00:00:00Z", "1", "1")
	bad.BillingMode = "MONTHLY"
	tooPrecise := rec("m-3", c1, "2026-03-01T00:00:00Z", "1.0000001", "1")
	for _, r := range []spend.Record{bad, tooPrecise} {
		_, err := f.Spend.Ingest(f.Platform.Ctx, spend.SliceSource([]spend.Record{rec("m-1", c1, "2026-03-01T00:00:00Z", "1", "1"), r}))
		wantCode(t, err, apperr.Validation, "record 1")
	}
	f.assertNothingStored(t)
}

// TestIngest_ConcurrentOverlappingRequests sends the same records in two
// requests at once, in opposite orders (a pipeline retrying a request that
// timed out): they must neither deadlock nor count a record twice.
func TestIngest_ConcurrentOverlappingRequests(t *testing.T) {
	f := newFixture(t, now)
	customers := []int64{f.C1.Account.ID, f.C2.Account.ID, f.C3.Account.ID}
	const n = 3000
	fwd := make([]spend.Record, n)
	for i := range fwd {
		fwd[i] = rec(fmt.Sprintf("cc-%05d", i), customers[i%3], "2026-03-01T00:00:00Z", "1", "0.5")
	}
	rev := make([]spend.Record, n)
	for i := range rev {
		rev[i] = fwd[n-1-i]
	}
	var wg sync.WaitGroup
	results := make([]*spend.Result, 2)
	errs := make([]error, 2)
	for i, batch := range [][]spend.Record{fwd, rev} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = f.Spend.Ingest(f.Platform.Ctx, spend.SliceSource(batch))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	a, b := results[0], results[1]
	if a.Accepted+b.Accepted != n || a.Duplicates+b.Duplicates != n || a.Conflicts+b.Conflicts != 0 || a.Rejected+b.Rejected != 0 {
		t.Fatalf("results %+v and %+v: want %d accepted and %d duplicates between them", *a, *b, n, n)
	}
	var sum struct {
		Records int64
		List    decimal.Decimal
	}
	if err := f.Store.DB.Raw(`SELECT sum(records) AS records, sum(list_total) AS list FROM spend_totals`).Scan(&sum).Error; err != nil {
		t.Fatal(err)
	}
	if sum.Records != n || !sum.List.Equal(decimal.NewFromInt(n)) {
		t.Errorf("totals count %d records and %s list, want %d and %d", sum.Records, sum.List, n, n)
	}
}
