package spend

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/models"
)

// TestSpool_ReplaysWhatWasWritten: every field comes back exactly, amounts
// whose coefficient does not fit an int64 included.
func TestSpool_ReplaysWhatWasWritten(t *testing.T) {
	sp, err := newSpool()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sp.remove(); err != nil {
			t.Error(err)
		}
	}()
	huge := decimal.RequireFromString("1.000000000000000000000000000")
	recs := []Record{
		{ExternalID: "a", CustomerID: 42, ProductCode: "ecs", Region: "cn-north-1", BillingMode: models.PayPerUse,
			UsageAt: time.Date(2026, 3, 1, 1, 2, 3, 456789123, time.UTC), List: decimal.RequireFromString("12.50"), Actual: decimal.RequireFromString("-0.000001")},
		{ExternalID: "ünïcode\x01", CustomerID: -7, ProductCode: "p", BillingMode: models.ReservedInstance,
			UsageAt: time.Date(2999, 12, 31, 23, 59, 59, 0, time.FixedZone("x", 8*3600)), List: huge, Actual: decimal.New(5, 3)},
	}
	for i := range recs {
		if err := sp.write(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.flush(); err != nil {
		t.Fatal(err)
	}
	for round := range 2 { // a replay can itself be replayed
		src, err := sp.reader()
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range recs {
			got, err := src.Next()
			if err != nil {
				t.Fatalf("round %d record %d: %v", round, i, err)
			}
			if got.ExternalID != want.ExternalID || got.CustomerID != want.CustomerID || got.ProductCode != want.ProductCode ||
				got.Region != want.Region || got.BillingMode != want.BillingMode || !got.UsageAt.Equal(want.UsageAt) ||
				got.List.Exponent() != want.List.Exponent() || got.List.Coefficient().Cmp(want.List.Coefficient()) != 0 ||
				got.Actual.Exponent() != want.Actual.Exponent() || got.Actual.Coefficient().Cmp(want.Actual.Coefficient()) != 0 {
				t.Errorf("round %d record %d = %+v, want %+v", round, i, got, want)
			}
		}
		if _, err := src.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("after the last record: %v, want io.EOF", err)
		}
	}
}
