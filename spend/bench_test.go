package spend_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"

	"partnerd/models"
	"partnerd/spend"
)

const benchBatch = 10_000

// benchRecord is the i-th record of a benchmark: 1,000 records per customer
// of the fixture, spread over March 2026.
func benchRecord(i int, customers []int64) spend.Record {
	list := decimal.New(int64(i%997+1), -2)
	return spend.Record{ExternalID: fmt.Sprintf("bench-%09d", i), CustomerID: customers[i%len(customers)],
		ProductCode: "ecs", Region: "cn-north-1", BillingMode: models.PayPerUse,
		UsageAt: ts("2026-03-01T00:00:00Z").Add(time.Duration(i%(20*86400)) * time.Second),
		List:    list, Actual: list.Mul(decimal.New(8, -1))}
}

// ndjsonBody streams the records [from, from+n) as NDJSON, rendered
// without reflection so the client side costs little of the measurement.
func ndjsonBody(from, n int, customers []int64) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		w := bufio.NewWriterSize(pw, 64<<10)
		var line []byte
		for i := from; i < from+n; i++ {
			r := benchRecord(i, customers)
			line = fmt.Appendf(line[:0], `{"externalId":%q,"customerId":%d,"productCode":%q,"region":%q,"billingMode":%q,"usageAt":%q,"listAmount":%q,"actualAmount":%q}`+"\n",
				r.ExternalID, r.CustomerID, r.ProductCode, r.Region, r.BillingMode, r.UsageAt.Format(time.RFC3339), r.List.String(), r.Actual.String())
			if _, err := w.Write(line); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(w.Flush())
	}()
	return pr
}

// BenchmarkIngestNDJSON ingests b.N requests of 10,000 new records each, as
// POST /v1/expenditures does (NDJSON parsing included), into an expenditures
// table that grows over the run.
func BenchmarkIngestNDJSON(b *testing.B) {
	f := newFixture(b, ts("2026-03-25T00:00:00Z"))
	customers := []int64{f.C1.Account.ID, f.C2.Account.ID, f.C3.Account.ID, f.C4.Account.ID, f.C5.Account.ID}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := f.Spend.Ingest(f.Platform.Ctx, spend.NewNDJSONSource(ndjsonBody(i*benchBatch, benchBatch, customers)))
		if err != nil {
			b.Fatal(err)
		}
		if res.Accepted != benchBatch {
			b.Fatalf("accepted %d of %d", res.Accepted, benchBatch)
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkIngestRawCopyBaseline is the yardstick of issue 5's ingestion
// benchmark: a raw binary COPY of the same records, already parsed and
// attributed, into a bare copy of the expenditures table with the same
// indexes (no constraints, no staging, no totals).
func BenchmarkIngestRawCopyBaseline(b *testing.B) {
	f := newFixture(b, ts("2026-03-25T00:00:00Z"))
	customers := []int64{f.C1.Account.ID, f.C2.Account.ID, f.C3.Account.ID, f.C4.Account.ID, f.C5.Account.ID}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, f.Store.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE bare_expenditures (LIKE expenditures INCLUDING DEFAULTS INCLUDING INDEXES)`); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE SEQUENCE bare_ids; ALTER TABLE bare_expenditures ALTER id SET DEFAULT nextval('bare_ids')`); err != nil {
		b.Fatal(err)
	}
	cols := []string{"external_id", "customer_id", "owner_id", "product_code", "region", "billing_mode", "usage_at", "month", "list_amount", "actual_amount", "received_at"}
	now := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := 0
		row := make([]any, len(cols))
		_, err := conn.CopyFrom(ctx, pgx.Identifier{"bare_expenditures"}, cols, pgx.CopyFromFunc(func() ([]any, error) {
			if k == benchBatch {
				return nil, nil
			}
			r := benchRecord(i*benchBatch+k, customers)
			k++
			row[0], row[1], row[2], row[3], row[4], row[5] = r.ExternalID, r.CustomerID, f.R1.Account.ID, r.ProductCode, r.Region, string(r.BillingMode)
			row[6], row[7], row[8], row[9], row[10] = r.UsageAt, int32(202603),
				pgtype.Numeric{Int: r.List.Coefficient(), Exp: r.List.Exponent(), Valid: true},
				pgtype.Numeric{Int: r.Actual.Coefficient(), Exp: r.Actual.Exponent(), Valid: true}, now
			return row, nil
		}))
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkIngestParseNDJSON measures the NDJSON parser alone, which runs
// while PostgreSQL takes the COPY.
func BenchmarkIngestParseNDJSON(b *testing.B) {
	body, err := io.ReadAll(ndjsonBody(0, benchBatch, []int64{1, 2, 3}))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		src := spend.NewNDJSONSource(bytes.NewReader(body))
		for {
			if _, err := src.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "records/s")
}
