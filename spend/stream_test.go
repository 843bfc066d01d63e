package spend_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/apperr"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/spend"
)

func TestIngestNDJSON_AcceptsBothCustomerIDForms(t *testing.T) {
	f := newFixture(t, now)
	c1, c2 := f.C1.Account.ID, f.C2.Account.ID
	body := "\n" + ndjsonLine(rec("n-1", c1, "2026-03-01T00:00:00Z", "1.5", "1"), true) + "\r\n" +
		"\n   \n" +
		ndjsonLine(rec("n-2", c2, "2026-03-01T00:00:00Z", "2", "2"), false) + "\n" +
		"\x1e" + ndjsonLine(rec("n-3", c2, "2026-03-02T00:00:00Z", "3", "3"), true) // json-seq, no final newline
	res, err := f.Spend.Ingest(f.Platform.Ctx, spend.NewNDJSONSource(strings.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	wantCounts(t, res, 3, 0, 0, 0)
	if got := f.stored(t, "n-1"); got.CustomerID != c1 || !got.ListAmount.Equal(dec("1.5")) {
		t.Errorf("n-1 stored as %+v", got)
	}
	if got := f.stored(t, "n-2"); got.CustomerID != c2 {
		t.Errorf("n-2 stored as %+v", got)
	}
}

func TestIngestNDJSON_TruncatedStreamStoresNothing(t *testing.T) {
	f := newFixture(t, now)
	var b strings.Builder
	for i := 0; i < 5; i++ {
		b.WriteString(ndjsonLine(rec(fmt.Sprintf("t-%d", i), f.C1.Account.ID, "2026-03-01T00:00:00Z", "1", "1"), true) + "\n")
	}
	full := ndjsonLine(rec("t-5", f.C1.Account.ID, "2026-03-01T00:00:00Z", "1", "1"), true)
	b.WriteString(full[:len(full)-20]) // the connection dropped mid-record
	_, err := f.Spend.Ingest(f.Platform.Ctx, spend.NewNDJSONSource(strings.NewReader(b.String())))
	wantCode(t, err, apperr.Validation, "line 6", "incomplete")
	f.assertNothingStored(t)
}

func TestIngestNDJSON_MalformedLines(t *testing.T) {
	good := `{"externalId":"g","customerId":7,"productCode":"ecs","region":"r","billingMode":"PAY_PER_USE","usageAt":"2026-03-01T00:00:00Z","listAmount":"1","actualAmount":"1"}`
	cases := map[string]struct{ line, want string }{
		"number amount":   {strings.Replace(good, `"listAmount":"1"`, `"listAmount":1`, 1), "not a JSON number"},
		"bad decimal":     {strings.Replace(good, `"listAmount":"1"`, `"listAmount":"1,5"`, 1), "listAmount"},
		"exponent":        {strings.Replace(good, `"listAmount":"1"`, `"listAmount":"1e3"`, 1), "listAmount"},
		"unknown mode":    {strings.Replace(good, `PAY_PER_USE`, `MONTHLY`, 1), "billingMode"},
		"bad time":        {strings.Replace(good, `2026-03-01T00:00:00Z`, `2026-03-01 00:00`, 1), "usageAt"},
		"no externalId":   {strings.Replace(good, `"externalId":"g",`, ``, 1), "externalId is required"},
		"bad customer id": {strings.Replace(good, `"customerId":7`, `"customerId":"not-an-id!"`, 1), "customerId"},
		"fraction id":     {strings.Replace(good, `"customerId":7`, `"customerId":7.5`, 1), "customerId"},
		"leading zero":    {strings.Replace(good, `"customerId":7`, `"customerId":07`, 1), "leading zeros"},
		"array":           {`[1,2,3]`, "not a JSON object"},
		"trailing junk":   {good + `}`, "invalid JSON"},
		"wrong type":      {strings.Replace(good, `"region":"r"`, `"region":5`, 1), "region must be a string"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			src := spend.NewNDJSONSource(strings.NewReader(good + "\n\n" + c.line + "\n" + good + "\n"))
			if _, err := src.Next(); err != nil {
				t.Fatalf("first line: %v", err)
			}
			_, err := src.Next()
			wantCode(t, err, apperr.Validation, "line 3", c.want)
		})
	}
}

func TestIngestNDJSON_CustomerIDOfAnotherTypeIsUnknownCustomer(t *testing.T) {
	line := fmt.Sprintf(`{"externalId":"g","customerId":%q,"productCode":"ecs","billingMode":"SUBSCRIPTION","usageAt":"2026-03-01T08:00:00+08:00","listAmount":"1.000001","actualAmount":"0"}`,
		ids.Encode("User", 7))
	r, err := spend.NewNDJSONSource(strings.NewReader(line)).Next()
	if err != nil {
		t.Fatal(err)
	}
	if r.CustomerID != 0 || r.Region != "" || r.BillingMode != models.Subscription || !r.UsageAt.Equal(ts("2026-03-01T00:00:00Z")) || !r.List.Equal(dec("1.000001")) {
		t.Errorf("parsed %+v", r)
	}
}

func csvRow(r spend.Record) string {
	return strings.Join([]string{r.ExternalID, fmt.Sprint(r.CustomerID), r.ProductCode, r.Region, string(r.BillingMode),
		r.UsageAt.Format(time.RFC3339), r.List.String(), r.Actual.String()}, ",")
}

func TestIngestCSV_WithBOMAndCRLF(t *testing.T) {
	f := newFixture(t, now)
	c1 := f.C1.Account.ID
	body := "\xef\xbb\xbf" + spend.CSVHeader + "\r\n" +
		csvRow(rec("c-1", c1, "2026-03-01T00:00:00Z", "1.25", "1")) + "\r\n" +
		`c-2,` + ids.Encode("Account", c1) + `,"ecs, large",,RESERVED_INSTANCE,2026-03-02T00:00:00Z,3,2` + "\r\n"
	src, err := spend.NewCSVSource(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Spend.Ingest(f.Platform.Ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	wantCounts(t, res, 2, 0, 0, 0)
	if tot := f.totals(t, c1, 202603); !tot.ListTotal.Equal(dec("4.25")) || !tot.PrepaidList.Equal(dec("3")) {
		t.Errorf("totals %+v", tot)
	}
}

func TestIngestCSV_WrongHeader(t *testing.T) {
	for name, body := range map[string]string{
		"reordered": "customer_id,external_id,product_code,region,billing_mode,usage_at,list_amount,actual_amount\n",
		"missing":   "external_id,customer_id,product_code,region,billing_mode,usage_at,list_amount\n",
		"camelCase": "externalId,customerId,productCode,region,billingMode,usageAt,listAmount,actualAmount\n",
		"quoted":    `"` + spend.CSVHeader + `"` + "\n",
		"empty":     "",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := spend.NewCSVSource(strings.NewReader(body))
			wantCode(t, err, apperr.Validation, "header")
		})
	}
}

func TestIngestCSV_BadRowStoresNothing(t *testing.T) {
	f := newFixture(t, now)
	c1 := f.C1.Account.ID
	cases := map[string]struct{ row, want string }{
		"bad decimal":  {"c-3," + fmt.Sprint(c1) + ",ecs,r,PAY_PER_USE,2026-03-01T00:00:00Z,12.3.4,1", "list_amount"},
		"few fields":   {"c-3," + fmt.Sprint(c1) + ",ecs,r,PAY_PER_USE,2026-03-01T00:00:00Z,1", "7 fields"},
		"bare quote":   {`c-3,` + fmt.Sprint(c1) + `,ec"s,r,PAY_PER_USE,2026-03-01T00:00:00Z,1,1`, "line 4"},
		"unknown mode": {"c-3," + fmt.Sprint(c1) + ",ecs,r,PREPAID,2026-03-01T00:00:00Z,1,1", "billing_mode"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			body := spend.CSVHeader + "\n" +
				csvRow(rec("c-1", c1, "2026-03-01T00:00:00Z", "1", "1")) + "\n" +
				csvRow(rec("c-2", c1, "2026-03-01T00:00:00Z", "1", "1")) + "\n" +
				c.row + "\n" +
				csvRow(rec("c-4", c1, "2026-03-01T00:00:00Z", "1", "1")) + "\n"
			src, err := spend.NewCSVSource(strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.Spend.Ingest(f.Platform.Ctx, src)
			wantCode(t, err, apperr.Validation, "line 4", c.want)
			f.assertNothingStored(t)
		})
	}
}

// TestIngestNDJSON_StreamOf200000Records streams a generated body through a
// pipe: the records never exist in memory all at once.
func TestIngestNDJSON_StreamOf200000Records(t *testing.T) {
	if testing.Short() {
		t.Skip("large stream")
	}
	f := newFixture(t, now)
	customers := []int64{f.C1.Account.ID, f.C2.Account.ID, f.C3.Account.ID, f.C4.Account.ID, f.C5.Account.ID}
	const n = 200_000
	type sums struct{ list, actual decimal.Decimal }
	want := map[int64]*sums{}
	for _, c := range customers {
		want[c] = &sums{}
	}
	pr, pw := io.Pipe()
	go func() {
		w := bufio.NewWriter(pw)
		base := ts("2026-03-01T00:00:00Z")
		for i := 0; i < n; i++ {
			c := customers[i%len(customers)]
			list := decimal.New(int64(i%997+1), -2) // 0.01 .. 9.97
			actual := list.Mul(dec("0.8")).Round(6)
			r := spend.Record{ExternalID: fmt.Sprintf("big-%07d", i), CustomerID: c, ProductCode: "ecs", Region: "cn-north-1",
				BillingMode: models.PayPerUse, UsageAt: base.Add(time.Duration(i) * time.Second), List: list, Actual: actual}
			want[c].list = want[c].list.Add(list)
			want[c].actual = want[c].actual.Add(actual)
			if _, err := w.WriteString(ndjsonLine(r, i%2 == 0) + "\n"); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(w.Flush())
	}()
	start := time.Now()
	res, err := f.Spend.Ingest(f.Platform.Ctx, spend.NewNDJSONSource(pr))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records in %s", n, time.Since(start))
	wantCounts(t, res, n, 0, 0, 0)
	if got := f.count(t, `SELECT count(*) FROM expenditures`); got != n {
		t.Errorf("%d expenditures stored, want %d", got, n)
	}
	// 200,000 seconds from 1 March stays in March (Beijing time).
	got, err := f.Spend.MonthTotals(f.Platform.Ctx, customers, models.Month{Year: 2026, Month: time.March})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range customers {
		if !got[c].List.Equal(want[c].list) || !got[c].Actual.Equal(want[c].actual) || got[c].Records != n/int64(len(customers)) {
			t.Errorf("customer %d totals %+v, want list %s actual %s over %d", c, got[c], want[c].list, want[c].actual, n/len(customers))
		}
	}
}

func TestSpendMonthTotals_Scoped(t *testing.T) {
	f := newFixture(t, now)
	c1, c2, c3, c5 := f.C1.Account.ID, f.C2.Account.ID, f.C3.Account.ID, f.C5.Account.ID
	f.ingest(t,
		rec("s-1", c1, "2026-03-01T00:00:00Z", "10", "8"),
		rec("s-2", c2, "2026-03-01T00:00:00Z", "20", "16"),
		rec("s-5", c5, "2026-03-01T00:00:00Z", "50", "40"),
	)
	march := models.Month{Year: 2026, Month: time.March}
	all := []int64{c1, c2, c3, c5, 987654}
	// R1 sees its customer C1 only.
	got, err := f.Spend.MonthTotals(f.R1.Ctx, all, march)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[c1].List.Equal(dec("10")) || got[c1].AsOf == nil || !got[c1].AsOf.Equal(now) {
		t.Errorf("R1 got %+v, want C1 only (10 as of %s)", got, now)
	}
	// D1 sees its subtree: C1, C2 and C3 (no records: zero), not D2's C5.
	got, err = f.Spend.MonthTotals(f.D1.Ctx, all, march)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !got[c2].Actual.Equal(dec("16")) || !got[c3].List.IsZero() || got[c3].AsOf != nil {
		t.Errorf("D1 got %+v", got)
	}
	if _, leaked := got[c5]; leaked {
		t.Error("D1 got the totals of D2's customer")
	}
	// D2 does not see D1's customers.
	got, err = f.Spend.MonthTotals(f.D2.Ctx, []int64{c1, c2}, march)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("D2 got %+v of D1's customers", got)
	}
	// A customer sees itself.
	got, err = f.Spend.MonthTotals(f.C5.Ctx, all, march)
	if err != nil || len(got) != 1 || !got[c5].List.Equal(dec("50")) {
		t.Errorf("C5 got %+v, %v", got, err)
	}
	// The platform sees everyone; the unknown id is absent.
	got, err = f.Spend.MonthTotals(f.Platform.Ctx, all, march)
	if err != nil || len(got) != 4 {
		t.Errorf("platform got %+v, %v", got, err)
	}
	if _, err := f.Spend.MonthTotals(t.Context(), all, march); apperr.CodeOf(err) != apperr.Unauthenticated {
		t.Errorf("no principal: %v", err)
	}
}

func TestIngestSource_SliceNamesTheRecord(t *testing.T) {
	r := rec("x", 1, "2026-03-01T00:00:00Z", "1", "1")
	r.ProductCode = ""
	src := spend.SliceSource([]spend.Record{rec("ok", 1, "2026-03-01T00:00:00Z", "1", "1"), r})
	if _, err := src.Next(); err != nil {
		t.Fatal(err)
	}
	_, err := src.Next()
	wantCode(t, err, apperr.Validation, "record 1", "productCode")
	if _, err := spend.SliceSource(nil).Next(); !errors.Is(err, io.EOF) {
		t.Errorf("empty source: %v", err)
	}
}
