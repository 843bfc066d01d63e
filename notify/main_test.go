package notify_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"partnerd/accounts"
	"partnerd/models"
	"partnerd/store"
	"partnerd/testkit"
)

// emit commits ev through the outbox, as a domain change would.
func emit(t testing.TB, st *store.Store, ev store.Event) {
	t.Helper()
	if err := st.InTx(context.Background(), func(tx *store.Tx) error { return tx.Emit(ev) }); err != nil {
		t.Fatal(err)
	}
}

// customer creates a customer under parent with the given users (no user
// from testkit.Add: the roles are the test's).
func customer(t testing.TB, tr *testkit.Tree, parent int64, name string, email, phone *string) *models.Account {
	t.Helper()
	a, err := tr.Accounts.Create(tr.Platform.Ctx, accounts.CreateInput{Kind: models.KindCustomer, ParentID: parent, Name: name, Email: email, Phone: phone})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func ptr[T any](v T) *T { return &v }

// user adds a user with a phone and locale.
func user(t testing.TB, tr *testkit.Tree, acct int64, phone, locale string, roles ...models.Role) testkit.Party {
	t.Helper()
	in := accounts.CreateUserInput{AccountID: acct, Roles: roles, Locale: locale, Name: "User " + string(roles[0])}
	if phone != "" {
		in.Phone = &phone
	}
	return tr.AddUserWith(t, in)
}

// byAddress indexes deliveries by channel and address (or user for IN_SITE).
func count(list []models.Delivery, ch models.Channel) int {
	n := 0
	for _, d := range list {
		if d.Channel == ch {
			n++
		}
	}
	return n
}

func isChinese(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r >= 0x4e00 && r <= 0x9fff })
}

const wait = 20 * time.Second
