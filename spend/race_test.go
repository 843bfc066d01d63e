package spend_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"partnerd/apperr"
	"partnerd/spend"
)

// raceRecords are n records for C1, C2 and C3 in March 2026, list 1 and
// actual 0.5 each unless changed.
func raceRecords(f *fixture, prefix string, n int) []spend.Record {
	customers := []int64{f.C1.Account.ID, f.C2.Account.ID, f.C3.Account.ID}
	recs := make([]spend.Record, n)
	for i := range recs {
		recs[i] = rec(fmt.Sprintf("%s-%03d", prefix, i), customers[i%3], "2026-03-01T00:00:00Z", "1", "0.5")
	}
	return recs
}

// TestIngest_LostRaceReplaysOnTheStagedPath makes another request store
// some of a request's externalIds between its check and its COPY, in its
// third batch: the COPY fails on the unique index, and the request — rolled
// back, then replayed whole from its spool or slice — counts them as
// duplicates and conflicts, and everything else exactly once.
func TestIngest_LostRaceReplaysOnTheStagedPath(t *testing.T) {
	for _, form := range []string{"ndjson", "slice"} {
		t.Run(form, func(t *testing.T) {
			f := newFixture(t, now)
			svc, paths := f.service()
			spend.SetBatchSize(svc, 4)
			recs := raceRecords(f, "lr", 20)
			other := []spend.Record{recs[9], recs[10], recs[17], rec("lr-other", f.C1.Account.ID, "2026-03-02T00:00:00Z", "7", "7")}
			other[1].List = dec("3") // recs[10] with other content: a conflict for the request
			copies := 0
			spend.SetBeforeCopy(svc, func() {
				if copies++; copies == 3 {
					res := f.ingest(t, other...) // commits before the COPY of records 8–11
					wantCounts(t, res, 4, 0, 0, 0)
				}
			})
			src := spend.SliceSource(recs)
			if form == "ndjson" {
				src = ndjsonSource(recs)
			}
			res, err := svc.Ingest(f.Platform.Ctx, src)
			if err != nil {
				t.Fatal(err)
			}
			wantCounts(t, res, 17, 2, 1, 0)
			if len(res.Errors) != 1 || res.Errors[0].Index != 10 || !strings.Contains(res.Errors[0].Reason, "listAmount") {
				t.Errorf("errors %+v, want the conflict at index 10 naming listAmount", res.Errors)
			}
			if paths.count("staged") != 1 || paths.count("direct") != 0 {
				t.Errorf("paths %v, want the request replayed on the staged path", paths.paths)
			}
			if n := f.count(t, `SELECT count(*) FROM expenditures`); n != 21 {
				t.Errorf("%d expenditures stored, want 21", n)
			}
			if got := f.stored(t, "lr-010"); !got.ListAmount.Equal(dec("3")) {
				t.Errorf("lr-010 stored with list %s, want the first version's 3", got.ListAmount)
			}
			f.consistentTotals(t)
			if n := f.count(t, `SELECT count(*) FROM audit_log WHERE action = 'expenditures.ingest'`); n != 2 {
				t.Errorf("%d audit entries, want 2 (one per request; the rolled back attempt leaves none)", n)
			}
		})
	}
}

// TestIngest_LostRaceThenMalformedLineStoresNothing: a request that lost
// the race is read to its end before the replay, and a malformed line after
// the race still refuses it whole.
func TestIngest_LostRaceThenMalformedLineStoresNothing(t *testing.T) {
	f := newFixture(t, now)
	svc, _ := f.service()
	spend.SetBatchSize(svc, 2)
	recs := raceRecords(f, "lm", 10)
	spend.SetBeforeCopy(svc, func() { f.ingest(t, recs[0]) })
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(ndjsonLine(r, false) + "\n")
	}
	b.WriteString(`{"externalId":"lm-bad","customerId":1,"productCode":"x","billingMode":"PAY_PER_USE","usageAt":"2026-03-01T00:00:00Z","listAmount":"1","actualAmount":"one"}` + "\n")
	_, err := svc.Ingest(f.Platform.Ctx, spend.NewNDJSONSource(strings.NewReader(b.String())))
	wantCode(t, err, apperr.Validation, "line 11", "actualAmount")
	if n := f.count(t, `SELECT count(*) FROM expenditures`); n != 1 {
		t.Errorf("%d expenditures stored, want only the one the other request stored", n)
	}
	f.consistentTotals(t)
}

// TestIngest_ConcurrentPartialOverlaps runs rounds of three requests at
// once over overlapping random subsets of the same externalIds, in random
// orders, some with other content, over several batches: whichever request
// stores a record first, every record is stored once, the others count it as
// a duplicate or a conflict, and the running totals are exactly the sums of
// the stored records.
func TestIngest_ConcurrentPartialOverlaps(t *testing.T) {
	f := newFixture(t, now)
	svc, paths := f.service()
	spend.SetBatchSize(svc, 25)
	rng := rand.New(rand.NewPCG(5, 1))
	const rounds, universe, clients = 8, 200, 3
	for round := range rounds {
		all := raceRecords(f, fmt.Sprintf("po%02d", round), universe)
		requests := make([][]spend.Record, clients)
		holders := make([]int, universe) // how many requests carry each record
		variants := make([]map[string]bool, universe)
		for c := range requests {
			for _, i := range rng.Perm(universe) {
				if rng.IntN(3) == 0 {
					continue
				}
				r := all[i]
				if i%10 == 0 && c > 0 { // other content than the first request's
					r.List = dec(fmt.Sprint(1 + c))
				}
				requests[c] = append(requests[c], r)
				holders[i]++
				if variants[i] == nil {
					variants[i] = map[string]bool{}
				}
				variants[i][r.List.String()] = true
			}
		}
		results := make([]*spend.Result, clients)
		errs := make([]error, clients)
		var wg sync.WaitGroup
		for c := range requests {
			wg.Go(func() {
				src := spend.SliceSource(requests[c])
				if c%2 == 1 {
					src = ndjsonSource(requests[c])
				}
				results[c], errs[c] = svc.Ingest(f.Platform.Ctx, src)
			})
		}
		wg.Wait()
		var distinct, repeats, mixed int
		for i, h := range holders {
			if h > 0 {
				distinct++
				repeats += h - 1
			}
			if len(variants[i]) > 1 {
				mixed++
			}
		}
		var accepted, dupConf, conflicts int
		for c, err := range errs {
			if err != nil {
				t.Fatalf("round %d request %d: %v", round, c, err)
			}
			r := results[c]
			if r.Rejected != 0 {
				t.Fatalf("round %d request %d rejected %d: %+v", round, c, r.Rejected, r.Errors)
			}
			accepted += r.Accepted
			dupConf += r.Duplicates + r.Conflicts
			conflicts += r.Conflicts
		}
		if accepted != distinct || dupConf != repeats {
			t.Fatalf("round %d: %d accepted and %d duplicates or conflicts, want %d and %d", round, accepted, dupConf, distinct, repeats)
		}
		if mixed > 0 && conflicts == 0 {
			t.Errorf("round %d: %d records came in several versions, none reported as a conflict", round, mixed)
		}
		if n := f.count(t, `SELECT count(*) FROM expenditures WHERE external_id LIKE ?`, fmt.Sprintf("po%02d-%%", round)); n != int64(distinct) {
			t.Fatalf("round %d: %d stored, want %d", round, n, distinct)
		}
	}
	f.consistentTotals(t)
	t.Logf("paths: %d direct, %d replayed on the staged path", paths.count("direct"), paths.count("staged"))
}
