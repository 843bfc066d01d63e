package expenditures_test

import (
	"slices"
	"sort"
	"testing"

	"partnerd/apperr"
	"partnerd/expenditures"
	"partnerd/testkit"
)

// externalIDs pages through everything f selects for the caller and returns
// the records' externalIds, sorted.
func (f *fixture) externalIDs(t *testing.T, caller testkit.Party, fl expenditures.Filter) []string {
	t.Helper()
	var out []string
	var after int64
	for {
		p, err := f.Exp.Page(caller.Ctx, fl, 2, after)
		if err != nil {
			t.Fatalf("page: %v", err)
		}
		for _, r := range p.Records {
			out = append(out, r.ExternalID)
			after = r.ID
		}
		if !p.HasNext {
			break
		}
	}
	sort.Strings(out)
	return out
}

// A partner sees the records owned by the partners of its subtree, and
// nothing of anyone else's — not in summaries, pages, counts, exports or by
// ID; a customer sees its own; the platform all. Narrowing to an account
// outside the scope is NOT_FOUND; to an account of the wrong kind
// VALIDATION.
func TestScope_EachCallerSeesItsOwnRecordsOnly(t *testing.T) {
	f := newFixture(t, ts("2026-06-20T00:00:00Z"))
	tr := f.Tree
	f.ingestAt(t, ts("2026-06-20T00:00:00Z"),
		rec("c1", tr.C1.Account.ID, "2026-06-01T00:00:00Z", "1", "1"),
		rec("c2", tr.C2.Account.ID, "2026-06-02T00:00:00Z", "2", "2"),
		rec("c3", tr.C3.Account.ID, "2026-06-03T00:00:00Z", "3", "3"),
		rec("c4", tr.C4.Account.ID, "2026-06-04T00:00:00Z", "4", "4"),
		rec("c5", tr.C5.Account.ID, "2026-06-05T00:00:00Z", "5", "5"),
		rec("p1", tr.P1.Account.ID, "2026-06-06T00:00:00Z", "6", "6"),
	)
	all := expenditures.Filter{}
	for _, c := range []struct {
		name   string
		caller testkit.Party
		f      expenditures.Filter
		want   []string
	}{
		{"platform", tr.Platform, all, []string{"c1", "c2", "c3", "c4", "c5", "p1"}},
		{"D1", tr.D1, all, []string{"c1", "c2", "c3"}},
		{"R1", tr.R1, all, []string{"c1"}},
		{"S1", tr.S1, all, []string{"c4"}},
		{"D2", tr.D2, all, []string{"c5"}},
		{"C1", tr.C1, all, []string{"c1"}},
		{"P1", tr.P1, all, []string{"p1"}},
		{"D1 narrowed to R2", tr.D1, expenditures.Filter{PartnerID: tr.R2.Account.ID}, []string{"c2"}},
		{"D1 narrowed to itself", tr.D1, expenditures.Filter{PartnerID: tr.D1.Account.ID}, []string{"c1", "c2", "c3"}},
		{"platform narrowed to S1", tr.Platform, expenditures.Filter{PartnerID: tr.S1.Account.ID}, []string{"c4"}},
		{"D1 for C3", tr.D1, expenditures.Filter{CustomerID: tr.C3.Account.ID}, []string{"c3"}},
		{"platform for P1", tr.Platform, expenditures.Filter{CustomerID: tr.P1.Account.ID}, []string{"p1"}},
		{"C1 for itself", tr.C1, expenditures.Filter{CustomerID: tr.C1.Account.ID}, []string{"c1"}},
		{"D1 narrowed to R1, for C2", tr.D1, expenditures.Filter{PartnerID: tr.R1.Account.ID, CustomerID: tr.C2.Account.ID}, nil},
	} {
		if c.name == "D1 narrowed to R1, for C2" {
			// C2 is D1's, but not (and never was) R1's.
			_, err := f.Exp.Page(c.caller.Ctx, c.f, 10, 0)
			wantCode(t, c.name, err, apperr.NotFound)
			continue
		}
		if got := f.externalIDs(t, c.caller, c.f); !slices.Equal(got, c.want) {
			t.Errorf("%s: records %q, want %q", c.name, got, c.want)
		}
		s, err := f.Exp.Summarize(c.caller.Ctx, expenditures.ByCustomer, c.f)
		if err != nil || s.Records != len(c.want) {
			t.Errorf("%s: summary %+v %v", c.name, s, err)
		}
		if n, err := f.Exp.Count(c.caller.Ctx, c.f); err != nil || n != len(c.want) {
			t.Errorf("%s: count %d %v", c.name, n, err)
		}
	}

	for _, c := range []struct {
		name   string
		caller testkit.Party
		f      expenditures.Filter
		code   apperr.Code
	}{
		{"D1 narrowed to S1", tr.D1, expenditures.Filter{PartnerID: tr.S1.Account.ID}, apperr.NotFound},
		{"R1 narrowed to D1 (its parent)", tr.R1, expenditures.Filter{PartnerID: tr.D1.Account.ID}, apperr.NotFound},
		{"R1 narrowed to R2 (its sibling)", tr.R1, expenditures.Filter{PartnerID: tr.R2.Account.ID}, apperr.NotFound},
		{"D1 narrowed to an unknown account", tr.D1, expenditures.Filter{PartnerID: 999999}, apperr.NotFound},
		{"D1 for C4", tr.D1, expenditures.Filter{CustomerID: tr.C4.Account.ID}, apperr.NotFound},
		{"D1 for P1", tr.D1, expenditures.Filter{CustomerID: tr.P1.Account.ID}, apperr.NotFound},
		{"D1 for an unknown account", tr.D1, expenditures.Filter{CustomerID: 999999}, apperr.NotFound},
		{"C1 for C2", tr.C1, expenditures.Filter{CustomerID: tr.C2.Account.ID}, apperr.NotFound},
		{"C1 narrowed to R1 (its partner)", tr.C1, expenditures.Filter{PartnerID: tr.R1.Account.ID}, apperr.NotFound},
		{"C1 narrowed to itself", tr.C1, expenditures.Filter{PartnerID: tr.C1.Account.ID}, apperr.Validation},
		{"D1 narrowed to C1 (a customer)", tr.D1, expenditures.Filter{PartnerID: tr.C1.Account.ID}, apperr.Validation},
		{"D1 for R1 (a partner)", tr.D1, expenditures.Filter{CustomerID: tr.R1.Account.ID}, apperr.Validation},
	} {
		_, err := f.Exp.Summarize(c.caller.Ctx, expenditures.ByMonth, c.f)
		wantCode(t, c.name+" (summary)", err, c.code)
		_, err = f.Exp.Page(c.caller.Ctx, c.f, 10, 0)
		wantCode(t, c.name+" (page)", err, c.code)
		_, err = f.Exp.Count(c.caller.Ctx, c.f)
		wantCode(t, c.name+" (count)", err, c.code)
		_, err = f.Exp.PrepareExport(c.caller.Ctx, expenditures.ExportRecords, "", c.f)
		wantCode(t, c.name+" (export)", err, c.code)
	}

	// By ID (node): in scope, or NOT_FOUND like an ID that does not exist.
	p, err := f.Exp.Page(tr.Platform.Ctx, expenditures.Filter{}, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	byExt := map[string]int64{}
	for _, r := range p.Records {
		byExt[r.ExternalID] = r.ID
	}
	for _, c := range []struct {
		caller testkit.Party
		ext    string
		ok     bool
	}{
		{tr.D1, "c1", true}, {tr.D1, "c3", true}, {tr.D1, "c4", false}, {tr.R1, "c2", false}, {tr.R1, "c1", true},
		{tr.C1, "c1", true}, {tr.C1, "c2", false}, {tr.P1, "p1", true}, {tr.Platform, "c5", true}, {tr.S1, "p1", false},
	} {
		r, err := f.Exp.Get(c.caller.Ctx, byExt[c.ext])
		if c.ok && (err != nil || r.ExternalID != c.ext) {
			t.Errorf("%s reads %s: %v", c.caller.Account.Name, c.ext, err)
		}
		if !c.ok {
			wantCode(t, c.caller.Account.Name+" reads "+c.ext, err, apperr.NotFound)
		}
	}
	_, err = f.Exp.Get(tr.D1.Ctx, 987654321)
	wantCode(t, "an unknown record", err, apperr.NotFound)

	// A cursor of a record outside the selection is refused.
	_, err = f.Exp.Page(tr.R1.Ctx, expenditures.Filter{}, 10, byExt["c2"])
	wantCode(t, "R1 paging after D1's other record", err, apperr.Validation)
}

// After a customer moves from R1 (under D1) to S1, each partner sees only
// the records of its own era, by usage time — a late record of the R1 era
// included — while the customer sees all of its own. The former partner may
// still narrow to its former customer (its records of that era); a partner
// that never had it may not.
func TestScope_MovedCustomerSplitsByEra(t *testing.T) {
	f := newFixture(t, ts("2026-07-01T00:00:00Z"))
	tr := f.Tree
	c1 := tr.C1.Account.ID
	f.ingestAt(t, ts("2026-07-10T00:00:00Z"),
		rec("r1-era-1", c1, "2026-07-02T00:00:00Z", "10", "9"),
		rec("r1-era-2", c1, "2026-07-09T00:00:00Z", "20", "18"),
	)
	f.Clock.Set(ts("2026-07-15T00:00:00Z"))
	f.moveCustomer(t, tr.C1.Account, tr.S1.Account)
	f.ingestAt(t, ts("2026-07-20T00:00:00Z"),
		rec("s1-era", c1, "2026-07-16T00:00:00Z", "100", "90"),
		rec("r1-era-late", c1, "2026-07-14T23:00:00Z", "5", "5"), // reported after the move
	)
	jul := expenditures.Filter{Period: period("2026-07", "2026-07")}
	byCustomer := func(fl expenditures.Filter) expenditures.Filter { fl.CustomerID = c1; return fl }
	for _, c := range []struct {
		name   string
		caller testkit.Party
		f      expenditures.Filter
		want   []string
		list   string
	}{
		{"R1", tr.R1, jul, []string{"r1-era-1", "r1-era-2", "r1-era-late"}, "35"},
		{"D1", tr.D1, jul, []string{"r1-era-1", "r1-era-2", "r1-era-late"}, "35"},
		{"S1", tr.S1, jul, []string{"s1-era"}, "100"},
		{"the customer", tr.C1, jul, []string{"r1-era-1", "r1-era-2", "r1-era-late", "s1-era"}, "135"},
		{"the platform", tr.Platform, jul, []string{"r1-era-1", "r1-era-2", "r1-era-late", "s1-era"}, "135"},
		{"D1 for its former customer", tr.D1, byCustomer(jul), []string{"r1-era-1", "r1-era-2", "r1-era-late"}, "35"},
		{"R1 for its former customer", tr.R1, byCustomer(jul), []string{"r1-era-1", "r1-era-2", "r1-era-late"}, "35"},
		{"S1 for its customer", tr.S1, byCustomer(jul), []string{"s1-era"}, "100"},
	} {
		if got := f.externalIDs(t, c.caller, c.f); !slices.Equal(got, c.want) {
			t.Errorf("%s: records %q, want %q", c.name, got, c.want)
		}
		for _, g := range groupings {
			s, err := f.Exp.Summarize(c.caller.Ctx, g, c.f)
			if err != nil || s.List.String() != c.list || s.Records != len(c.want) {
				t.Errorf("%s by %s: %s over %d, %v; want %s over %d", c.name, g, s.List, s.Records, err, c.list, len(c.want))
			}
		}
	}
	// D2 never had the customer.
	_, err := f.Exp.Page(tr.D2.Ctx, byCustomer(jul), 10, 0)
	wantCode(t, "D2 for C1", err, apperr.NotFound)
}
