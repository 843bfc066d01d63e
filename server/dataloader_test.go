package server_test

import (
	"fmt"
	"testing"

	"partnerd/accounts"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/server"
	"partnerd/testkit"
)

// A 3-level children query runs a constant number of SQL statements, not one
// per child: the loaders batch each level into one query.
func TestChildren_ThreeLevels_ConstantStatements(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	build := func(name string, fanout int) int64 {
		root := tr.Add(t, tr.Platform.Account.ID, models.KindDistributor, name)
		for i := 0; i < fanout; i++ {
			r, err := tr.Accounts.Create(tr.Platform.Ctx, accounts.CreateInput{Kind: models.KindReseller, ParentID: root.Account.ID, Name: fmt.Sprintf("%s R%d", name, i)})
			if err != nil {
				t.Fatal(err)
			}
			for j := 0; j < fanout; j++ {
				if _, err := tr.Accounts.Create(tr.Platform.Ctx, accounts.CreateInput{Kind: models.KindCustomer, ParentID: r.ID, Name: fmt.Sprintf("%s C%d.%d", name, i, j)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		return root.Account.ID
	}
	small, big := build("Small", 3), build("Big", 20)

	const q = `query Tree($id: ID!) { account(id: $id) { name children(first: 20) { totalCount edges { node {
		name parent { name } children(first: 20) { totalCount edges { node {
			name tier parent { name } children(first: 20) { totalCount edges { node { name } } } } } } } } } } }`
	count := func(root int64) (int64, int) {
		before := tr.Store.CountStatements()
		var out struct {
			Account struct {
				Children struct {
					Edges []struct {
						Node struct {
							Children struct {
								TotalCount int
								Edges      []struct{ Node struct{ Name string } }
							}
						}
					}
				}
			}
		}
		api.MustDo(t, tr.Platform.Token, q, map[string]any{"id": ids.Encode("Account", root)}, &out)
		n := 0
		for _, e := range out.Account.Children.Edges {
			n += len(e.Node.Children.Edges)
		}
		return tr.Store.CountStatements() - before, n
	}
	count(small) // warms the token cache: both counts below are without the token check
	sSmall, nSmall := count(small)
	sBig, nBig := count(big)
	if nSmall != 9 || nBig != 400 {
		t.Fatalf("grandchildren: small %d (want 9), big %d (want 400)", nSmall, nBig)
	}
	if sSmall != sBig {
		t.Fatalf("statements grow with the data: %d for 3×3, %d for 20×20", sSmall, sBig)
	}
	// root lookup, and per level one page and one count query.
	if sBig > 8 {
		t.Fatalf("%d statements for a 3-level query; want at most 8", sBig)
	}
	t.Logf("3-level children query: %d statements for 3×3 and for 20×20", sBig)
}
