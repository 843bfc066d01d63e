package invariants_test

import (
	"context"
	"fmt"
	"slices"

	"partnerd/models"
	"partnerd/spend"
)

// fate is what the model expects of one record of an ingestion.
type fate int

const (
	// fresh: a new external id: stored.
	fresh fate = iota
	// shared: a new external id sent by two requests of the round: exactly
	// one of them stores it, the other sees a duplicate.
	shared
	// replayed: stored before with the same content: a duplicate, ignored.
	replayed
	// conflicting: stored before with other content: reported, the first
	// version kept.
	conflicting
	// rejected: refused on its own (unknown customer, a partner, actual
	// above list, repeated in the request).
	rejected
)

// ingestOp records expenditures as the platform's billing pipeline
// (spend.IngestRecords; DOMAIN.md §4): idempotent by external id, each
// record owned by the customer's partner at its usage time.
type ingestOp struct {
	base
	token string
	recs  []spend.Record
	fates []fate
	res   *spend.Result
	err   error
}

func (o *ingestOp) String() string {
	counts := map[fate]int{}
	var customers []int64
	for i, f := range o.fates {
		counts[f]++
		if c := o.recs[i].CustomerID; !slices.Contains(customers, c) {
			customers = append(customers, c)
		}
	}
	slices.Sort(customers)
	return fmt.Sprintf("%s ingest %d records of %v (%d new, %d shared, %d replays, %d conflicts, %d rejected)", o.name, len(o.recs),
		customers, counts[fresh], counts[shared], counts[replayed], counts[conflicting], counts[rejected])
}

func (o *ingestOp) touch(r *round) {
	for i, rec := range o.recs {
		if (o.fates[i] == fresh || o.fates[i] == shared) && models.MonthOf(rec.UsageAt, beijing).Key() == models.MonthOf(r.start, beijing).Key() {
			add(r.consIn, rec.CustomerID, rec.Actual)
			add(r.listIn, rec.CustomerID, rec.List)
		}
	}
}

// predict: every record is well formed, so the request as a whole is
// always taken; each record's fate is known in advance.
func (o *ingestOp) predict(m *model, r *round) { o.want = succeeds }

func (o *ingestOp) run(w *world) {
	o.err = o.do(w, o.token, "ingest", func(ctx context.Context) error {
		var err error
		o.res, err = w.spend.IngestRecords(ctx, o.recs)
		return err
	})
}

func (o *ingestOp) phase() int { return phaseMain }

func (o *ingestOp) apply(m *model, r *round, v *violations) {
	o.judge(v, o, o.err)
	if o.err != nil {
		return
	}
	n := map[fate]int{}
	var reported []int
	for i, f := range o.fates {
		n[f]++
		if f == conflicting || f == rejected {
			reported = append(reported, i)
		}
	}
	res := o.res
	won := res.Accepted - n[fresh]
	if res.Conflicts != n[conflicting] || res.Rejected != n[rejected] || won < 0 || won > n[shared] ||
		res.Accepted+res.Duplicates != n[fresh]+n[shared]+n[replayed] {
		v.add("%s: answered %d accepted, %d duplicates, %d conflicts, %d rejected", o, res.Accepted, res.Duplicates, res.Conflicts, res.Rejected)
	}
	var got []int
	for _, e := range res.Errors {
		got = append(got, e.Index)
	}
	slices.Sort(got)
	if !slices.Equal(got, reported) {
		v.add("%s: reported records %v, the model expects %v", o, got, reported)
	}
	for i, rec := range o.recs {
		switch o.fates[i] {
		case fresh:
			m.store(rec)
		case shared:
			r.wins[rec.ExternalID] += won
			if _, ok := m.records[rec.ExternalID]; !ok {
				m.store(rec)
			}
		}
	}
}
