package accounts_test

import (
	"strings"
	"testing"

	"partnerd/models"
	"partnerd/testkit"
)

// The database keeps the tree whole against any writer: moves carry the
// subtree's paths, kind changes respect the children, no cycles.
func TestTreeIntegrity_InTheDatabase(t *testing.T) {
	tr := testkit.NewTree(t)
	db := tr.Store.DB
	load := func(id int64) models.Account {
		var a models.Account
		if err := db.Where("id = ?", id).Take(&a).Error; err != nil {
			t.Fatal(err)
		}
		return a
	}

	// Moving R1 (with C1) from D1 to D2 rewrites both paths.
	if err := db.Exec("UPDATE accounts SET parent_id = ? WHERE id = ?", tr.D2.Account.ID, tr.R1.Account.ID).Error; err != nil {
		t.Fatalf("move: %v", err)
	}
	r1, c1, d2 := load(tr.R1.Account.ID), load(tr.C1.Account.ID), load(tr.D2.Account.ID)
	if r1.Path != d2.Path+itoa(r1.ID)+"/" || c1.Path != r1.Path+itoa(c1.ID)+"/" || r1.Depth != 2 || c1.Depth != 3 {
		t.Fatalf("after the move: R1 %s (%d), C1 %s (%d), D2 %s", r1.Path, r1.Depth, c1.Path, c1.Depth, d2.Path)
	}

	cases := []struct{ name, sql, constraint string }{
		{"a reseller with customers becomes a customer", "UPDATE accounts SET kind = 'CUSTOMER' WHERE id = " + itoa(tr.R2.Account.ID), "accounts_parent_kind"},
		{"a distributor under its own reseller", "UPDATE accounts SET parent_id = " + itoa(tr.R2.Account.ID) + " WHERE id = " + itoa(tr.D1.Account.ID), ""},
		{"a distributor under its own customer", "UPDATE accounts SET kind = 'RESELLER', parent_id = " + itoa(tr.C3.Account.ID) + " WHERE id = " + itoa(tr.D1.Account.ID), ""},
	}
	for _, c := range cases {
		err := db.Exec(c.sql).Error
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if c.constraint != "" && !strings.Contains(err.Error(), c.constraint) && !strings.Contains(err.Error(), "cannot") {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// A reseller without children may become a customer under a distributor.
	empty := tr.Add(t, tr.D1.Account.ID, models.KindReseller, "Empty Reseller")
	if err := db.Exec("UPDATE accounts SET kind = 'CUSTOMER' WHERE id = ?", empty.Account.ID).Error; err != nil {
		t.Fatalf("a childless reseller to customer: %v", err)
	}
}

func itoa(n int64) string {
	s := ""
	if n == 0 {
		return "0"
	}
	for n > 0 {
		s = string(rune('0'+n%10)) + s
		n /= 10
	}
	return s
}
