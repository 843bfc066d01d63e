package spend_test

import (
	"testing"

	"partnerd/accounts"
	"partnerd/spend"
)

// Records carry their customer's tags as they were at ingestion (NULL for
// an untagged customer), on the direct and on the staged path alike.
func TestIngest_CopiesTheCustomersTags(t *testing.T) {
	f := newFixture(t, ts("2026-11-20T04:00:00Z"))
	if _, err := f.Accounts.SetTags(f.Platform.Ctx, f.C1.Account.ID, []accounts.Tag{{Key: "env", Value: "prod"}, {Key: "costCenter", Value: "CC-7"}}); err != nil {
		t.Fatal(err)
	}
	direct, _ := f.service()
	staged, _ := f.service()
	spend.ForceStaged(staged)
	for i, svc := range []*spend.Service{direct, staged} {
		p := string(rune('a' + i))
		res, err := svc.Ingest(f.Platform.Ctx, spend.SliceSource([]spend.Record{
			rec(p+"-1", f.C1.Account.ID, "2026-11-20T01:00:00Z", "10", "9"),
			rec(p+"-2", f.C2.Account.ID, "2026-11-20T01:00:00Z", "10", "9"),
		}))
		if err != nil || res.Accepted != 2 {
			t.Fatalf("path %d: %+v %v", i, res, err)
		}
		var tags []struct {
			ExternalID string
			Tags       *string
		}
		if err := f.Store.DB.Raw(`SELECT external_id, tags::text AS tags FROM expenditures WHERE external_id LIKE ? ORDER BY external_id`, p+"-%").Scan(&tags).Error; err != nil {
			t.Fatal(err)
		}
		if len(tags) != 2 || tags[0].Tags == nil || *tags[0].Tags != `{"env": "prod", "costCenter": "CC-7"}` || tags[1].Tags != nil {
			t.Fatalf("path %d: tags %+v", i, tags)
		}
	}
	// Later tag changes do not rewrite what was recorded.
	if _, err := f.Accounts.SetTags(f.Platform.Ctx, f.C1.Account.ID, nil); err != nil {
		t.Fatal(err)
	}
	if n := f.count(t, `SELECT count(*) FROM expenditures WHERE tags IS NOT NULL`); n != 2 {
		t.Fatalf("%d tagged records after the tags were cleared", n)
	}
}
