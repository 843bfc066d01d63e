// Package testkit builds test fixtures through the domain services, so tests
// exercise the same paths as users: a migrated database of the test's own, a
// platform, and a tree of partners and customers with users and tokens.
package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Beijing time on any host

	"partnerd/accounts"
	"partnerd/models"
	"partnerd/store"
	"partnerd/store/storetest"
)

// Shanghai is the default billing time zone (Beijing time).
var Shanghai = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	return loc
}()

// Party is one account of the fixture tree with an admin user and its token.
type Party struct {
	Account *models.Account
	User    *models.User
	Token   string
	// Ctx acts as the party's admin.
	Ctx context.Context
}

// Tree is the standard fixture: a platform; distributor D1 with second-level
// resellers R1 and R2, customers C1 (under R1), C2 (under R2) and C3 (directly
// under D1); a single-tier reseller S1 with customer C4; a second distributor
// D2 with customer C5; a personal account P1.
type Tree struct {
	Store                                      *store.Store
	Accounts                                   *accounts.Service
	Platform                                   Party
	D1, R1, R2, C1, C2, C3, S1, C4, D2, C5, P1 Party
}

// NewStore opens a store on a fresh migrated database for the test.
func NewStore(t testing.TB, opts store.Options) *store.Store {
	return storetest.New(t, opts)
}

// NewTree builds the standard fixture tree on a fresh database.
func NewTree(t testing.TB) *Tree {
	t.Helper()
	return NewTreeOn(t, storetest.New(t, store.Options{}))
}

// NewTreeOn builds the standard fixture tree on st.
func NewTreeOn(t testing.TB, st *store.Store) *Tree {
	t.Helper()
	ctx := context.Background()
	svc := accounts.New(st)
	tr := &Tree{Store: st, Accounts: svc}
	token, err := svc.Bootstrap(ctx, "root@platform.test", "Test Platform")
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	p, err := svc.Authenticate(ctx, token)
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	plat, err := svc.Platform(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tr.Platform = Party{Account: plat, Token: token, Ctx: accounts.WithPrincipal(ctx, p)}
	tr.D1 = tr.Add(t, plat.ID, models.KindDistributor, "Distributor One")
	tr.R1 = tr.Add(t, tr.D1.Account.ID, models.KindReseller, "Reseller One")
	tr.R2 = tr.Add(t, tr.D1.Account.ID, models.KindReseller, "Reseller Two")
	tr.C1 = tr.Add(t, tr.R1.Account.ID, models.KindCustomer, "Customer One")
	tr.C2 = tr.Add(t, tr.R2.Account.ID, models.KindCustomer, "Customer Two")
	tr.C3 = tr.Add(t, tr.D1.Account.ID, models.KindCustomer, "Customer Three")
	tr.S1 = tr.Add(t, plat.ID, models.KindReseller, "Single-tier One")
	tr.C4 = tr.Add(t, tr.S1.Account.ID, models.KindCustomer, "Customer Four")
	tr.D2 = tr.Add(t, plat.ID, models.KindDistributor, "Distributor Two")
	tr.C5 = tr.Add(t, tr.D2.Account.ID, models.KindCustomer, "Customer Five")
	tr.P1 = tr.Add(t, plat.ID, models.KindPersonal, "Personal One")
	return tr
}

// Add creates an account under parentID as the platform, with an ADMIN user
// and a token.
func (tr *Tree) Add(t testing.TB, parentID int64, kind models.AccountKind, name string) Party {
	t.Helper()
	a, err := tr.Accounts.Create(tr.Platform.Ctx, accounts.CreateInput{Kind: kind, ParentID: parentID, Name: name})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return tr.AddUser(t, a, models.RoleAdmin)
}

// AddUser creates a user with the given roles on account a and returns the
// party acting as that user.
func (tr *Tree) AddUser(t testing.TB, a *models.Account, roles ...models.Role) Party {
	t.Helper()
	return tr.addUser(t, accounts.CreateUserInput{AccountID: a.ID, Roles: roles}, a)
}

// AddUserWith creates a user from in (AccountID and Roles required; a unique
// email when Email is empty) and returns the party acting as that user.
func (tr *Tree) AddUserWith(t testing.TB, in accounts.CreateUserInput) Party {
	t.Helper()
	return tr.addUser(t, in, nil)
}

// addUser creates the user and its token; acct is its account, loaded when nil.
func (tr *Tree) addUser(t testing.TB, in accounts.CreateUserInput, acct *models.Account) Party {
	t.Helper()
	if in.Email == "" {
		in.Email = uniqueEmail(in.AccountID, in.Roles)
	}
	u, err := tr.Accounts.CreateUser(tr.Platform.Ctx, in)
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	token, _, err := tr.Accounts.CreateToken(tr.Platform.Ctx, u.ID, 0)
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	p, err := tr.Accounts.Authenticate(context.Background(), token)
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	if acct == nil {
		if acct, err = tr.Accounts.Get(tr.Platform.Ctx, in.AccountID); err != nil {
			t.Fatal(err)
		}
	}
	return Party{Account: acct, User: u, Token: token, Ctx: accounts.WithPrincipal(context.Background(), p)}
}

func uniqueEmail(accountID int64, roles []models.Role) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("u%d-%s-%s@test.example", accountID, strings.ToLower(string(roles[0])), hex.EncodeToString(b))
}
