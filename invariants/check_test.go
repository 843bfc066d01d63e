package invariants_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/shopspring/decimal"
	"gorm.io/gorm"

	"partnerd/models"
	"partnerd/store"
)

// checker checks the invariants on the database, during and after each
// round, and the model against the database after it.
type checker struct {
	w *world
	m *model
	// people is how many CUSTOMER and PERSONAL accounts there are: the
	// rounds move them, never create or remove one.
	people int64
	// The ledger replayed so far: up to lastLedger, each account's limit
	// and allocated credit.
	lastLedger   int64
	limit, alloc map[int64]decimal.Decimal
	// lastRecord is the last expenditure whose owner was checked.
	lastRecord int64
	// marks are the largest ids of the tables with request ids before the
	// round: the round's rows come after.
	marks map[string]int64
}

// requestTables are the tables whose rows carry the request id of the call
// that wrote them.
var requestTables = []string{"audit_log", "outbox", "credit_ledger", "account_control_changes"}

func newChecker(w *world, m *model) *checker {
	return &checker{w: w, m: m, limit: map[int64]decimal.Decimal{}, alloc: map[int64]decimal.Decimal{}, marks: map[string]int64{},
		people: int64(len(m.ofKind(models.KindCustomer, models.KindPersonal)))}
}

func (c *checker) db() *gorm.DB { return c.w.st.DB.WithContext(context.Background()) }

// scan runs a query into dest; a failure is a violation.
func scan(v *violations, db *gorm.DB, dest any, query string, args ...any) bool {
	if err := db.Raw(query, args...).Scan(dest).Error; err != nil {
		v.add("query failed: %v\n%s", err, query)
		return false
	}
	return true
}

// mark remembers where the tables with request ids end before a round.
func (c *checker) mark(v *violations) {
	for _, t := range requestTables {
		var id int64
		scan(v, c.db(), &id, `SELECT coalesce(max(id), 0) FROM `+t)
		c.marks[t] = id
	}
}

// run runs the round's operations all at once while a reader checks the
// tree, the processes and the credit sums in one snapshot after another:
// one when the round starts and one each time an operation ends while the
// others go on. It returns how many snapshots the reader checked.
func (c *checker) run(r *round, v *violations) int {
	stop, ended := make(chan struct{}), make(chan struct{}, 1)
	snapshots := 0
	var reader sync.WaitGroup
	reader.Go(func() {
		for {
			found := &violations{}
			err := c.db().Transaction(func(tx *gorm.DB) error {
				c.snapshot(tx, found)
				return nil
			}, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
			if err != nil {
				found.add("snapshot transaction: %v", err)
			}
			snapshots++
			if !found.empty() {
				for _, s := range found.list {
					v.add("snapshot %d during the round: %s", snapshots, s)
				}
				return
			}
			select {
			case <-stop:
				return
			case <-ended:
			}
		}
	})
	var ops sync.WaitGroup
	for _, o := range r.ops {
		ops.Go(func() {
			o.run(c.w)
			select {
			case ended <- struct{}{}:
			default: // a snapshot is due already
			}
		})
	}
	ops.Wait()
	close(stop)
	reader.Wait()
	return snapshots
}

// snapshot checks, in one snapshot, what must hold at every instant:
// every customer has exactly one owner (invariant 4), no customer is in two
// processes (5), and no partner allocated more than its limit (1).
func (c *checker) snapshot(db *gorm.DB, v *violations) {
	c.checkTree(db, v)
	c.checkProcesses(db, v)
	checkCredit(db, v)
}

// afterRound checks every invariant and the model once the round is over.
func (c *checker) afterRound(r *round, v *violations) {
	db := c.db()
	c.refusedWroteNothing(r, v)
	c.roundLedger(r, v)
	checkCredit(db, v)
	c.replayLedger(v)
	checkSpend(db, v)
	c.checkOwners(v)
	c.checkTree(db, v)
	c.checkProcesses(db, v)
	c.checkDerived(v)
	c.syncHistory(v)
	c.compareModel(v)
}

// checkCredit: for every account, what it allocated is the sum of its
// children's limits and never more than its own limit (DOMAIN.md §3:
// "sum of allocations to children ≤ its credit limit").
func checkCredit(db *gorm.DB, v *violations) {
	var bad []struct {
		AccountID              int64
		CreditLimit, Allocated decimal.Decimal
		Children               decimal.Decimal
	}
	if !scan(v, db, &bad, `SELECT b.account_id, b.credit_limit, b.allocated, coalesce(k.total, 0) AS children
		FROM credit_balances b
		LEFT JOIN (SELECT a.parent_id, sum(cb.credit_limit) AS total FROM accounts a
			JOIN credit_balances cb ON cb.account_id = a.id GROUP BY a.parent_id) k ON k.parent_id = b.account_id
		WHERE b.allocated > b.credit_limit OR b.allocated < 0 OR b.credit_limit < 0 OR b.allocated <> coalesce(k.total, 0)`) {
		return
	}
	for _, b := range bad {
		v.add("credit of %d: limit %s, allocated %s, children's limits %s (allocated must equal them and stay within the limit)%s",
			b.AccountID, b.CreditLimit, b.Allocated, b.Children, knownRace(!b.Allocated.GreaterThan(b.CreditLimit),
				"an allocation or reversal that raced its child's move: TestRace_AllocationDuringUnbinding, TestRace_AllocationDuringMigration"))
	}
	var missing []int64
	scan(v, db, &missing, `SELECT a.id FROM accounts a LEFT JOIN credit_balances b ON b.account_id = a.id
		WHERE a.kind <> 'PLATFORM' AND b.account_id IS NULL`)
	for _, id := range missing {
		v.add("account %d has no credit row", id)
	}
}

// replayLedger replays the ledger rows written since the last round, in id
// order (each row is written under the locks of the accounts it names, so
// per account the id order is the order of the changes): every row must
// record the balances the replay gives, no partner may have allocated more
// than its limit after any row, and the replay ends at the stored balances
// (invariants 1 and 2).
func (c *checker) replayLedger(v *violations) {
	var rows []models.LedgerEntry
	if !scan(v, c.db(), &rows, `SELECT * FROM credit_ledger WHERE id > ? ORDER BY id`, c.lastLedger) {
		return
	}
	for _, e := range rows {
		c.lastLedger = e.ID
		c.limit[e.ToAccountID] = c.limit[e.ToAccountID].Add(e.Amount)
		touched := []int64{e.ToAccountID}
		if e.Kind != models.LedgerLimit {
			if e.FromAccountID == nil {
				v.add("ledger row %d (%s) moves credit from no account", e.ID, e.Kind)
				continue
			}
			from := *e.FromAccountID
			c.alloc[from] = c.alloc[from].Add(e.Amount)
			touched = append(touched, from)
			if e.FromLimitAfter == nil || e.FromAllocatedAfter == nil ||
				!e.FromLimitAfter.Equal(c.limit[from]) || !e.FromAllocatedAfter.Equal(c.alloc[from]) {
				v.add("ledger row %d (%s): recorded %d's balances %v/%v, the replay gives %s/%s",
					e.ID, e.Kind, from, e.FromLimitAfter, e.FromAllocatedAfter, c.limit[from], c.alloc[from])
			}
		}
		if !e.ToLimitAfter.Equal(c.limit[e.ToAccountID]) || !e.ToAllocatedAfter.Equal(c.alloc[e.ToAccountID]) {
			v.add("ledger row %d (%s): recorded %d's balances %s/%s, the replay gives %s/%s",
				e.ID, e.Kind, e.ToAccountID, e.ToLimitAfter, e.ToAllocatedAfter, c.limit[e.ToAccountID], c.alloc[e.ToAccountID])
		}
		for _, id := range touched {
			if c.alloc[id].GreaterThan(c.limit[id]) || c.limit[id].IsNegative() || c.alloc[id].IsNegative() {
				v.add("after ledger row %d (%s) account %d has allocated %s of a limit of %s", e.ID, e.Kind, id, c.alloc[id], c.limit[id])
			}
		}
	}
	var stored []models.CreditBalance
	if !scan(v, c.db(), &stored, `SELECT * FROM credit_balances ORDER BY account_id`) {
		return
	}
	for _, b := range stored {
		if !b.CreditLimit.Equal(c.limit[b.AccountID]) || !b.Allocated.Equal(c.alloc[b.AccountID]) {
			v.add("credit of %d: stored %s/%s, the ledger replays to %s/%s",
				b.AccountID, b.CreditLimit, b.Allocated, c.limit[b.AccountID], c.alloc[b.AccountID])
		}
	}
}

// refusedWroteNothing: a refused call left no audit entry, outbox row,
// ledger row or control change behind.
func (c *checker) refusedWroteNothing(r *round, v *violations) {
	var rids []string
	for _, o := range r.ops {
		rids = append(rids, o.refusedCalls()...)
	}
	if len(rids) == 0 {
		return
	}
	for _, t := range requestTables {
		var found []struct {
			RequestID string
			N         int
		}
		scan(v, c.db(), &found, `SELECT request_id, count(*) AS n FROM `+t+` WHERE id > ? AND request_id = ANY(?::text[])
			GROUP BY request_id`, c.marks[t], pqText(rids))
		for _, f := range found {
			v.add("the refused call %s wrote %d rows to %s", f.RequestID, f.N, t)
		}
	}
}

// ledgerer is an operation that writes one ledger row when it succeeds.
type ledgerer interface {
	ledger() (models.LedgerKind, decimal.Decimal, bool)
}

// roundLedger: every ledger row of the round was written by a call that
// succeeded, and an allocation, reversal or limit wrote exactly its row.
func (c *checker) roundLedger(r *round, v *violations) {
	var rows []struct {
		RequestID string
		Kind      models.LedgerKind
		Amount    decimal.Decimal
	}
	if !scan(v, c.db(), &rows, `SELECT request_id, kind, amount FROM credit_ledger WHERE id > ? ORDER BY id`, c.marks["credit_ledger"]) {
		return
	}
	ok := map[string]bool{}
	for _, o := range r.ops {
		for _, cl := range o.info().calls {
			if cl.err == nil {
				ok[cl.rid] = true
			}
		}
	}
	byRID := map[string][]string{}
	for _, row := range rows {
		if !ok[row.RequestID] {
			v.add("ledger row %s %s was written by %q, no call of the round that succeeded", row.Kind, row.Amount, row.RequestID)
		}
		byRID[row.RequestID] = append(byRID[row.RequestID], fmt.Sprintf("%s %s", row.Kind, row.Amount.String()))
	}
	for _, o := range r.ops {
		l, isL := o.(ledgerer)
		if !isL {
			continue
		}
		kind, amount, wrote := l.ledger()
		if !wrote {
			continue
		}
		rid := o.info().calls[0].rid
		want := []string{fmt.Sprintf("%s %s", kind, amount.String())}
		if got := byRID[rid]; !slices.Equal(got, want) {
			v.add("%s: wrote ledger rows %v, the model expects %v", o, got, want)
		}
	}
}

// checkSpend: Σ expenditure records = the running totals, per customer and
// month and per owner and month (invariant 3); what vouchers paid too.
func checkSpend(db *gorm.DB, v *violations) {
	var bad []struct {
		ID    int64
		Month int
	}
	scan(v, db, &bad, `WITH e AS (SELECT customer_id, month, sum(list_amount) AS list, sum(actual_amount) AS actual,
			coalesce(sum(list_amount) FILTER (WHERE billing_mode <> 'PAY_PER_USE'), 0) AS prepaid, count(*) AS n
			FROM expenditures GROUP BY 1, 2),
		r AS (SELECT customer_id, month, sum(amount) AS voucher FROM voucher_redemptions GROUP BY 1, 2)
		SELECT coalesce(e.customer_id, t.customer_id) AS id, coalesce(e.month, t.month) AS month
		FROM e FULL JOIN spend_totals t ON t.customer_id = e.customer_id AND t.month = e.month
		LEFT JOIN r ON r.customer_id = coalesce(e.customer_id, t.customer_id) AND r.month = coalesce(e.month, t.month)
		WHERE coalesce(e.list, 0) <> coalesce(t.list_total, 0) OR coalesce(e.actual, 0) <> coalesce(t.actual_total, 0)
			OR coalesce(e.prepaid, 0) <> coalesce(t.prepaid_list, 0) OR coalesce(e.n, 0) <> coalesce(t.records, 0)
			OR coalesce(r.voucher, 0) <> coalesce(t.voucher_total, 0)`)
	for _, b := range bad {
		v.add("spend of customer %d in %d: the records do not add up to spend_totals", b.ID, b.Month)
	}
	bad = nil
	scan(v, db, &bad, `WITH e AS (SELECT owner_id, month, sum(list_amount) AS list, sum(actual_amount) AS actual, count(*) AS n
			FROM expenditures GROUP BY 1, 2),
		r AS (SELECT owner_id, month, sum(amount) AS voucher FROM voucher_redemptions GROUP BY 1, 2)
		SELECT coalesce(e.owner_id, t.owner_id) AS id, coalesce(e.month, t.month) AS month
		FROM e FULL JOIN owner_spend_totals t ON t.owner_id = e.owner_id AND t.month = e.month
		LEFT JOIN r ON r.owner_id = coalesce(e.owner_id, t.owner_id) AND r.month = coalesce(e.month, t.month)
		WHERE coalesce(e.list, 0) <> coalesce(t.list_total, 0) OR coalesce(e.actual, 0) <> coalesce(t.actual_total, 0)
			OR coalesce(e.n, 0) <> coalesce(t.records, 0) OR coalesce(r.voucher, 0) <> coalesce(t.voucher_total, 0)`)
	for _, b := range bad {
		v.add("spend of owner %d in %d: the records do not add up to owner_spend_totals", b.ID, b.Month)
	}
}

// history is account_parent_history by account, in (valid_from, id) order.
type history map[int64][]span

func loadHistory(v *violations, db *gorm.DB) history {
	var rows []struct {
		AccountID, ParentID int64
		ValidFrom           time.Time
	}
	if !scan(v, db, &rows, `SELECT account_id, parent_id, valid_from FROM account_parent_history ORDER BY account_id, valid_from, id`) {
		return nil
	}
	h := history{}
	for _, r := range rows {
		h[r.AccountID] = append(h[r.AccountID], span{From: r.ValidFrom.UTC(), Parent: r.ParentID})
	}
	return h
}

// checkOwners: every record stored since the last round belongs to the
// partner that owned its customer at its usage time, in the Beijing month
// of its usage (invariant 3; DOMAIN.md §4).
func (c *checker) checkOwners(v *violations) {
	var recs []struct {
		ID, CustomerID, OwnerID int64
		ExternalID              string
		UsageAt                 time.Time
		Month                   int
	}
	if !scan(v, c.db(), &recs, `SELECT id, customer_id, owner_id, external_id, usage_at, month FROM expenditures WHERE id > ? ORDER BY id`, c.lastRecord) {
		return
	}
	h := loadHistory(v, c.db())
	for _, r := range recs {
		c.lastRecord = r.ID
		spans := h[r.CustomerID]
		if len(spans) == 0 {
			v.add("record %s: customer %d has no parent history", r.ExternalID, r.CustomerID)
			continue
		}
		i := sort.Search(len(spans), func(i int) bool { return spans[i].From.After(r.UsageAt) })
		owner := spans[0].Parent
		if i > 0 {
			owner = spans[i-1].Parent
		}
		if r.OwnerID != owner {
			v.add("record %s of %d used at %s is owned by %d; its partner then was %d", r.ExternalID, r.CustomerID,
				r.UsageAt.UTC().Format(time.RFC3339Nano), r.OwnerID, owner)
		}
		if m := models.MonthOf(r.UsageAt, beijing).Key(); r.Month != m {
			v.add("record %s used at %s is in month %d, not %d", r.ExternalID, r.UsageAt.UTC().Format(time.RFC3339Nano), r.Month, m)
		}
	}
}

// checkTree: every account but the platform has exactly one owner — a
// parent of a kind it may sit under, a path and depth that follow it,
// exactly one open parent-history row naming it — and its history has no
// gap or overlap; no CUSTOMER or PERSONAL account appeared or vanished
// (invariant 4).
func (c *checker) checkTree(db *gorm.DB, v *violations) {
	var bad []struct {
		ID, ParentID     int64
		Kind, ParentKind string
	}
	scan(v, db, &bad, `SELECT a.id, coalesce(a.parent_id, 0) AS parent_id, a.kind, coalesce(p.kind, '') AS parent_kind
		FROM accounts a LEFT JOIN accounts p ON p.id = a.parent_id
		WHERE a.kind <> 'PLATFORM' AND (p.id IS NULL OR a.path <> p.path || a.id || '/' OR a.depth <> p.depth + 1
			OR NOT account_kind_fits(a.kind, p.kind))`)
	for _, b := range bad {
		v.add("account %d (%s) under %d (%s): no owner, or a path, depth or kind that does not follow it", b.ID, b.Kind, b.ParentID, b.ParentKind)
	}
	var owners []struct {
		ID   int64
		Open int
		Same bool
	}
	scan(v, db, &owners, `SELECT a.id, count(h.id) AS open, coalesce(bool_and(h.parent_id = a.parent_id), false) AS same
		FROM accounts a LEFT JOIN account_parent_history h ON h.account_id = a.id AND h.valid_to IS NULL
		WHERE a.kind <> 'PLATFORM' GROUP BY a.id
		HAVING count(h.id) <> 1 OR NOT coalesce(bool_and(h.parent_id = a.parent_id), false)`)
	for _, o := range owners {
		v.add("account %d has %d open owners in its parent history (naming its parent: %v), not exactly one", o.ID, o.Open, o.Same)
	}
	var gaps []struct{ AccountID, ID int64 }
	scan(v, db, &gaps, `SELECT account_id, id FROM (
			SELECT id, account_id, valid_to, lead(valid_from) OVER (PARTITION BY account_id ORDER BY valid_from, id) AS next
			FROM account_parent_history) h
		WHERE valid_to IS DISTINCT FROM next`)
	for _, g := range gaps {
		v.add("parent history row %d of %d does not end where the next one starts", g.ID, g.AccountID)
	}
	var people int64
	scan(v, db, &people, `SELECT count(*) FROM accounts WHERE kind IN ('CUSTOMER', 'PERSONAL')`)
	if people != c.people {
		v.add("%d customer and personal accounts, there were %d", people, c.people)
	}
}

// checkProcesses: no customer is in two open processes (an open migration
// item, a pending unbinding); an open item is a pending item of a pending
// or executing batch from the customer's current partner, a pending item of
// a submitted batch is open, and a pending unbinding is the customer's
// with its current partner (invariant 5).
func (c *checker) checkProcesses(db *gorm.DB, v *violations) {
	var two []struct {
		ID                int64
		Items, Unbindings int
	}
	scan(v, db, &two, `SELECT * FROM (SELECT a.id,
			(SELECT count(*) FROM migration_items i WHERE i.account_id = a.id AND i.open) AS items,
			(SELECT count(*) FROM unbindings u WHERE u.customer_id = a.id AND u.status = 'PENDING' AND u.expires_at > ?) AS unbindings
			FROM accounts a) x WHERE items + unbindings > 1`, c.w.st.Now())
	for _, t := range two {
		v.add("customer %d is in %d open migrations and %d pending unbindings at once", t.ID, t.Items, t.Unbindings)
	}
	var items []struct {
		AccountID, MigrationID int64
		Status, ItemStatus     string
		Open                   bool
	}
	scan(v, db, &items, `SELECT i.account_id, i.migration_id, m.status, i.status AS item_status, i.open
		FROM migration_items i JOIN migrations m ON m.id = i.migration_id JOIN accounts a ON a.id = i.account_id
		WHERE (i.open AND (NOT (m.status LIKE 'PENDING%' OR m.status = 'EXECUTING') OR i.status <> 'PENDING'
				OR a.kind <> 'CUSTOMER' OR a.parent_id <> m.source_id))
			OR (NOT i.open AND i.status = 'PENDING' AND m.status <> 'DRAFT')`)
	for _, i := range items {
		v.add("migration item of %d in batch %d (%s): item %s, open %v: out of step with its batch or the customer's partner",
			i.AccountID, i.MigrationID, i.Status, i.ItemStatus, i.Open)
	}
	var unbinds []struct{ ID, CustomerID int64 }
	scan(v, db, &unbinds, `SELECT u.id, u.customer_id FROM unbindings u JOIN accounts a ON a.id = u.customer_id
		WHERE u.status = 'PENDING' AND (a.kind <> 'CUSTOMER' OR a.parent_id <> u.partner_id)`)
	for _, u := range unbinds {
		v.add("pending unbinding %d of %d: the account is no longer that partner's customer", u.ID, u.CustomerID)
	}
}

// checkDerived: the purchase guard rows equal their inputs (status, credit,
// this month's totals, budget: "never stale", guard.Sync); a customer
// flagged in arrears this month has a negative available credit; a personal
// account holds no credit and is never flagged (lifecycle.Invite refuses
// one that is).
//
// The converse of the arrears flag is not checked: an accepted invitation
// makes a PERSONAL account that spent this month a CUSTOMER with 0 credit,
// so its available credit is negative, but association changes neither
// credit nor spend, which is when credit.UpdateArrears re-evaluates the
// flag (its stated contract).
func (c *checker) checkDerived(v *violations) {
	month := c.m.month
	var stale []int64
	scan(v, c.db(), &stale, `SELECT a.id FROM accounts a
		LEFT JOIN purchase_guards g ON g.customer_id = a.id
		LEFT JOIN credit_balances b ON b.account_id = a.id
		LEFT JOIN spend_totals t ON t.customer_id = a.id AND t.month = ?
		LEFT JOIN budgets bu ON bu.customer_id = a.id
		WHERE a.kind IN ('CUSTOMER', 'PERSONAL') AND (g.customer_id IS NULL
			OR g.kind <> a.kind OR g.status <> a.status OR g.frozen_reason IS DISTINCT FROM a.frozen_reason
			OR g.credit_limit <> coalesce(b.credit_limit, 0)
			OR (CASE WHEN g.month = ? THEN g.month_list ELSE 0 END) <> coalesce(t.list_total, 0)
			OR (CASE WHEN g.month = ? THEN g.month_actual ELSE 0 END) <> coalesce(t.actual_total - t.voucher_total, 0)
			OR g.budget_id IS DISTINCT FROM bu.id OR g.budget_amount IS DISTINCT FROM bu.amount)`, month, month, month)
	for _, id := range stale {
		v.add("the purchase guard row of %d does not match its account, credit, spend or budget", id)
	}
	var arrears []struct {
		AccountID int64
		Available decimal.Decimal
	}
	scan(v, c.db(), &arrears, `SELECT b.account_id, b.credit_limit - coalesce(t.actual_total - t.voucher_total, 0) AS available
		FROM credit_balances b JOIN accounts a ON a.id = b.account_id AND a.kind = 'CUSTOMER'
		LEFT JOIN spend_totals t ON t.customer_id = a.id AND t.month = ?
		WHERE b.in_arrears AND b.arrears_month = ? AND b.credit_limit - coalesce(t.actual_total - t.voucher_total, 0) >= 0`,
		month, month)
	for _, a := range arrears {
		v.add("customer %d is flagged in arrears with an available credit of %s", a.AccountID, a.Available)
	}
	var personal []struct {
		AccountID              int64
		CreditLimit, Allocated decimal.Decimal
		InArrears              bool
	}
	scan(v, c.db(), &personal, `SELECT b.account_id, b.credit_limit, b.allocated, b.in_arrears FROM credit_balances b
		JOIN accounts a ON a.id = b.account_id
		WHERE a.kind = 'PERSONAL' AND (b.in_arrears OR b.credit_limit <> 0 OR b.allocated <> 0)`)
	for _, p := range personal {
		if p.InArrears {
			v.add("personal account %d is flagged in arrears: no partner can invite it%s", p.AccountID,
				knownRace(true, "the arrears update of an ingestion that raced its unbinding: TestRace_IngestionDuringUnbinding"))
		}
		if !p.CreditLimit.IsZero() || !p.Allocated.IsZero() {
			v.add("personal account %d holds credit %s/%s%s", p.AccountID, p.CreditLimit, p.Allocated,
				knownRace(true, "an allocation that raced its unbinding: TestRace_AllocationDuringUnbinding"))
		}
	}
}

// knownRace names, in a violation, the race test that replays what
// probably caused it.
func knownRace(likely bool, what string) string {
	if !likely {
		return ""
	}
	return " — probably " + what
}

// syncHistory compares each account's owners with the database's parent
// history and learns the instants of the changes of the round, which only
// the database knows.
func (c *checker) syncHistory(v *violations) {
	h := loadHistory(v, c.db())
	for _, id := range c.m.ids(func(a *acct) bool { return a.Kind != models.KindPlatform }) {
		a, got := c.m.accts[id], h[id]
		same := len(a.History) == len(got)
		for i := 0; same && i < len(got); i++ {
			same = a.History[i].Parent == got[i].Parent && (a.History[i].From.IsZero() || a.History[i].From.Equal(got[i].From))
		}
		if !same {
			v.add("parent history of %d: %v, the model has %v", id, got, a.History)
			continue
		}
		a.History = got
	}
}

// compareModel compares the model with the database: accounts (kind,
// parent, status, credit, budget), running totals, open processes,
// batches and unbindings.
func (c *checker) compareModel(v *violations) {
	m, db := c.m, c.db()
	var accts []struct {
		ID, ParentID           int64
		Kind, Status           string
		FrozenReason           string
		CreditLimit, Allocated decimal.Decimal
		BudgetAmount           *decimal.Decimal
		OverspendAction        *string
		OverrideAmount         *decimal.Decimal
	}
	if !scan(v, db, &accts, `SELECT a.id, coalesce(a.parent_id, 0) AS parent_id, a.kind, a.status, coalesce(a.frozen_reason, '') AS frozen_reason,
			coalesce(b.credit_limit, 0) AS credit_limit, coalesce(b.allocated, 0) AS allocated,
			bu.amount AS budget_amount, bu.overspend_action, bu.override_amount
		FROM accounts a LEFT JOIN credit_balances b ON b.account_id = a.id LEFT JOIN budgets bu ON bu.customer_id = a.id ORDER BY a.id`) {
		return
	}
	if len(accts) != len(m.accts) {
		v.add("%d accounts, the model has %d", len(accts), len(m.accts))
	}
	for _, d := range accts {
		a := m.accts[d.ID]
		if a == nil {
			v.add("account %d is not in the model", d.ID)
			continue
		}
		if string(a.Kind) != d.Kind || a.Parent != d.ParentID || string(a.Status) != d.Status || string(a.Reason) != d.FrozenReason ||
			!a.Limit.Equal(d.CreditLimit) || !a.Allocated.Equal(d.Allocated) {
			v.add("account %d: %s under %d, %s/%s, credit %s/%s; the model has %s under %d, %s/%s, credit %s/%s", d.ID,
				d.Kind, d.ParentID, d.Status, d.FrozenReason, d.CreditLimit, d.Allocated,
				a.Kind, a.Parent, a.Status, a.Reason, a.Limit, a.Allocated)
		}
		b := a.Budget
		switch {
		case (b == nil) != (d.BudgetAmount == nil):
			v.add("account %d: budget %v, the model has %v", d.ID, d.BudgetAmount, b)
		case b == nil:
		case !b.Amount.Equal(*d.BudgetAmount) || string(b.Action) != *d.OverspendAction:
			v.add("account %d: budget %s %s, the model has %s %s", d.ID, d.BudgetAmount, *d.OverspendAction, b.Amount, b.Action)
		case b.OverrideMaybe:
			// An unfreeze raced spend: either answer was right; learn it.
			b.Override, b.OverrideMaybe = d.OverrideAmount, false
		case (b.Override == nil) != (d.OverrideAmount == nil) || (b.Override != nil && !b.Override.Equal(*d.OverrideAmount)):
			v.add("account %d: budget override %v, the model has %v", d.ID, d.OverrideAmount, b.Override)
		}
	}
	c.compareSpend(v, "spend_totals", "customer_id", m.spend)
	c.compareSpend(v, "owner_spend_totals", "owner_id", m.owners)

	var held []struct{ AccountID, MigrationID int64 }
	scan(v, db, &held, `SELECT account_id, migration_id FROM migration_items WHERE open`)
	var pending []struct{ CustomerID, ID int64 }
	scan(v, db, &pending, `SELECT customer_id, id FROM unbindings WHERE status = 'PENDING'`)
	gotBatch, gotUnbind := map[int64]int64{}, map[int64]int64{}
	for _, h := range held {
		gotBatch[h.AccountID] = h.MigrationID
	}
	for _, p := range pending {
		gotUnbind[p.CustomerID] = p.ID
	}
	for id, a := range m.accts {
		if a.Batch != gotBatch[id] || a.Unbinding != gotUnbind[id] {
			v.add("account %d is held by batch %d and unbinding %d; the model has batch %d and unbinding %d",
				id, gotBatch[id], gotUnbind[id], a.Batch, a.Unbinding)
		}
	}
	var batches []struct {
		ID     int64
		Status string
	}
	scan(v, db, &batches, `SELECT id, status FROM migrations ORDER BY id`)
	if len(batches) != len(m.batches) {
		v.add("%d migration batches, the model has %d", len(batches), len(m.batches))
	}
	for _, b := range batches {
		if mb := m.batches[b.ID]; mb == nil || string(mb.Status) != b.Status {
			v.add("batch %d is %s; the model has %+v", b.ID, b.Status, mb)
		}
	}
	var unbinds []struct {
		ID     int64
		Status string
	}
	scan(v, db, &unbinds, `SELECT id, status FROM unbindings ORDER BY id`)
	if len(unbinds) != len(m.unbinds) {
		v.add("%d unbindings, the model has %d", len(unbinds), len(m.unbinds))
	}
	for _, u := range unbinds {
		if mu := m.unbinds[u.ID]; mu == nil || mu.Status != u.Status {
			v.add("unbinding %d is %s; the model has %+v", u.ID, u.Status, mu)
		}
	}
}

// compareSpend compares one table of running totals with the model's.
func (c *checker) compareSpend(v *violations, table, key string, want map[spendKey]*sums) {
	var rows []struct {
		ID                                  int64
		Month                               int
		ListTotal, ActualTotal, PrepaidList decimal.Decimal
		Records                             int64
	}
	prepaid := "0" // owners' totals do not keep it
	if table == "spend_totals" {
		prepaid = "prepaid_list"
	}
	if !scan(v, c.db(), &rows, `SELECT `+key+` AS id, month, list_total, actual_total, `+prepaid+` AS prepaid_list, records FROM `+table) {
		return
	}
	seen := map[spendKey]bool{}
	for _, r := range rows {
		k := spendKey{r.ID, r.Month}
		seen[k] = true
		s := want[k]
		if s == nil {
			s = &sums{}
		}
		if !s.List.Equal(r.ListTotal) || !s.Actual.Equal(r.ActualTotal) || !s.Prepaid.Equal(r.PrepaidList) || s.N != r.Records {
			v.add("%s of %d in %d: list %s, actual %s, prepaid %s, %d records; the model has %s, %s, %s, %d", table, r.ID, r.Month,
				r.ListTotal, r.ActualTotal, r.PrepaidList, r.Records, s.List, s.Actual, s.Prepaid, s.N)
		}
	}
	for k, s := range want {
		if !seen[k] && s.N > 0 {
			v.add("%s of %d in %d: none; the model has %d records", table, k.id, k.month, s.N)
		}
	}
}

// pqText is a PostgreSQL text[] literal.
func pqText(list []string) string {
	return store.TextArray(list)
}
