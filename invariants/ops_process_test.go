package invariants_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/shopspring/decimal"

	"partnerd/lifecycle"
	"partnerd/migration"
	"partnerd/models"
	"partnerd/notify"
)

// unbindRequestOp starts the unbinding of a customer, by its partner or by
// the customer itself (lifecycle.RequestUnbinding; DOMAIN.md §1).
type unbindRequestOp struct {
	base
	actor, customer int64
	// parent is the customer's partner at the start of the round.
	parent int64
	token  string
	side   string
	// late: the customer may move, or its process end, during the round;
	// a request that succeeded then came after that.
	late bool
	err  error
	got  *lifecycle.Unbinding
}

func (o *unbindRequestOp) String() string {
	return fmt.Sprintf("%s request unbinding of %d by %d (%s side)", o.name, o.customer, o.actor, o.side)
}

func (o *unbindRequestOp) touch(r *round) { r.processStart[o.customer]++ }

func (o *unbindRequestOp) predict(m *model, r *round) {
	c := m.accts[o.customer]
	o.late = r.moving[o.customer] || r.mayEnd[o.customer]
	switch {
	case r.moving[o.customer]:
		o.want = either
	case c.Kind != models.KindCustomer || !m.sees(o.actor, o.customer):
		o.want = refused
	case o.actor != o.customer && o.actor != c.Parent && o.actor != m.platform:
		o.want = refused // a partner above the customer's own
	case c.Batch != 0 || c.Unbinding != 0:
		o.want = refused
		if r.mayEnd[o.customer] {
			o.want = either
		}
	case r.processStart[o.customer] > 1 || r.statusOp[o.customer]:
		o.want = either
	case c.Status == models.StatusFrozenWithResources:
		o.want = refused
	default:
		o.want = succeeds
	}
}

func (o *unbindRequestOp) run(w *world) {
	o.err = o.do(w, o.token, "requestUnbinding", func(ctx context.Context) (err error) {
		o.got, err = w.lifecycle.RequestUnbinding(ctx, o.customer)
		return err
	})
}

// phase: a request that succeeded on a customer moving, or held by a
// process ending, this round came after that (a held customer cannot be
// unbound).
func (o *unbindRequestOp) phase() int {
	if o.err == nil && o.late {
		return phaseAfterMove
	}
	return phaseMain
}

func (o *unbindRequestOp) apply(m *model, r *round, v *violations) {
	o.judge(v, o, o.err)
	if o.err != nil {
		return
	}
	c := m.accts[o.customer]
	u := o.got
	switch {
	case c.Batch != 0 || c.Unbinding != 0:
		v.add("%s: opened unbinding %d while the customer is in batch %d / unbinding %d", o, u.ID, c.Batch, c.Unbinding)
	case u.PartnerID != c.Parent || u.RequestedBy != o.side || u.Status != lifecycle.UnbindingPending:
		v.add("%s: answered partner %d, side %s, status %s; the model expects %d, %s, PENDING", o, u.PartnerID, u.RequestedBy, u.Status, c.Parent, o.side)
	}
	c.Unbinding = u.ID
	m.unbinds[u.ID] = &unbinding{ID: u.ID, Customer: c.ID, Partner: u.PartnerID, RequestedBy: u.RequestedBy, Status: lifecycle.UnbindingPending}
}

// unbindDecideOp answers a pending unbinding: the other side confirms
// (the customer becomes PERSONAL, its credit returns to the partner) or
// rejects it (lifecycle.ConfirmUnbinding, lifecycle.RejectUnbinding).
type unbindDecideOp struct {
	base
	id, customer, actor int64
	token               string
	confirm             bool
	// closed: the unbinding ended in an earlier round.
	closed bool
	err    error
	got    *lifecycle.Unbinding
}

func (o *unbindDecideOp) String() string {
	verb := "reject"
	if o.confirm {
		verb = "confirm"
	}
	return fmt.Sprintf("%s %s unbinding %d of %d by %d", o.name, verb, o.id, o.customer, o.actor)
}

func (o *unbindDecideOp) touch(r *round) {
	r.unbindOp[o.id] = true
	if o.closed {
		return
	}
	r.mayEnd[o.customer] = true
	if o.confirm {
		r.statusOp[o.customer] = true
		r.moving[o.customer] = true
		r.released[o.customer] = true
	}
}

func (o *unbindDecideOp) predict(m *model, r *round) {
	u := m.unbinds[o.id]
	c := m.accts[o.customer]
	side := lifecycle.SidePartner
	if o.actor == o.customer {
		side = lifecycle.SideCustomer
	}
	switch {
	case u.Status != lifecycle.UnbindingPending:
		o.want = refused
	case o.actor != o.customer && o.actor != u.Partner && o.actor != m.platform:
		o.want = refused
	case side == u.RequestedBy:
		o.want = refused
	case o.confirm && c.Status == models.StatusFrozenWithResources:
		o.want = refused
	default:
		o.want = succeeds
	}
}

func (o *unbindDecideOp) run(w *world) {
	if o.confirm {
		o.err = o.do(w, o.token, "confirmUnbinding", func(ctx context.Context) (err error) {
			o.got, err = w.lifecycle.ConfirmUnbinding(ctx, o.id)
			return err
		})
		return
	}
	o.err = o.do(w, o.token, "rejectUnbinding", func(ctx context.Context) (err error) {
		o.got, err = w.lifecycle.RejectUnbinding(ctx, o.id, "the invariants test says no")
		return err
	})
}

func (o *unbindDecideOp) phase() int {
	if o.confirm {
		return phaseMove
	}
	return phaseEnd
}

func (o *unbindDecideOp) apply(m *model, r *round, v *violations) {
	o.judge(v, o, o.err)
	if o.err != nil {
		return
	}
	u, c := m.unbinds[o.id], m.accts[o.customer]
	c.Unbinding = 0
	m.closedUnbinds = append(m.closedUnbinds, u.ID)
	if !o.confirm {
		u.Status = lifecycle.UnbindingRejected
		return
	}
	u.Status = lifecycle.UnbindingCompleted
	if o.got.Status != lifecycle.UnbindingCompleted || o.got.EffectiveAt == nil {
		v.add("%s: answered status %s, effective %v", o, o.got.Status, o.got.EffectiveAt)
	}
	// Its credit returns to the partner, its budget goes, it pays for
	// itself from now on.
	p := m.accts[c.Parent]
	p.Allocated, c.Limit = p.Allocated.Sub(c.Limit), decimal.Zero
	m.move(c, m.platform, models.KindPersonal)
	c.Status, c.Reason, c.Budget = models.StatusActive, "", nil
}

// migrateOp is a receiving partner's batch (DOMAIN.md §6): created from
// rows (migration.Create, which judges each row), then submitted
// (migration.Submit); a batch that cannot be submitted is cancelled as a
// draft.
type migrateOp struct {
	base
	receiver, source int64
	token            string
	rows             []migration.Row
	// rowWant is the model's judgment of each row's customer.
	rowWant map[int64]tri
	// late: a row's customer may move, or its process end, during the
	// round; a submission that succeeded then came after that.
	late bool
	// Outcomes: the batch, the customers it imported, and whether it was
	// submitted.
	id                   int64
	imported             []int64
	createErr, submitErr error
	status               migration.Status
}

func (o *migrateOp) String() string {
	var parts []string
	for _, r := range o.rows {
		parts = append(parts, fmt.Sprintf("%d:%s", r.AccountID, r.Credit))
	}
	return fmt.Sprintf("%s migrate %v from %d to %d", o.name, parts, o.source, o.receiver)
}

func (o *migrateOp) touch(r *round) {
	for _, row := range o.rows {
		r.processStart[row.AccountID]++
	}
}

func (o *migrateOp) predict(m *model, r *round) {
	o.rowWant = map[int64]tri{}
	total := decimal.Zero
	anyYes, anyMaybe := false, false
	for _, row := range o.rows {
		o.late = o.late || r.moving[row.AccountID] || r.mayEnd[row.AccountID]
		t := r.migratable(m, row.AccountID, o.source, 0, true)
		o.rowWant[row.AccountID] = t
		anyYes, anyMaybe = anyYes || t == yes, anyMaybe || t == maybe
		if t != no {
			total = total.Add(row.Credit)
		}
	}
	recv := m.accts[o.receiver]
	switch {
	case anyMaybe:
		o.want = either
	case !anyYes:
		o.want = refused // nothing to submit
	case m.secondLevel(recv):
		// The receiver's allocatable credit must cover the batch.
		limLo, limHi := r.limitRange(m, recv)
		alLo, alHi := r.allocatedRange(m, recv)
		switch {
		case total.LessThanOrEqual(limLo.Sub(alHi)):
			o.want = succeeds
		case total.GreaterThan(limHi.Sub(alLo)):
			o.want = refused
		default:
			o.want = either
		}
	default:
		o.want = succeeds
	}
}

func (o *migrateOp) run(w *world) {
	var b *migration.Migration
	o.createErr = o.do(w, o.token, "create", func(ctx context.Context) (err error) {
		b, err = w.migration.Create(ctx, o.source, o.rows, nil)
		return err
	})
	if o.createErr != nil {
		return
	}
	o.id = b.ID
	o.createErr = o.do(w, o.token, "items", func(ctx context.Context) error {
		items, _, _, err := w.migration.Items(ctx, b, 1000, 0)
		for _, it := range items {
			o.imported = append(o.imported, it.AccountID)
		}
		return err
	})
	o.submitErr = o.do(w, o.token, "submit", func(ctx context.Context) error {
		b, err := w.migration.Submit(ctx, o.id)
		if err == nil {
			o.status = b.Status
		}
		return err
	})
	if o.submitErr != nil {
		o.status = migration.StatusCancelled
		_ = o.do(w, o.token, "cancelDraft", func(ctx context.Context) error {
			_, err := w.migration.Cancel(ctx, o.id)
			return err
		})
	}
}

// phase: see unbindRequestOp.phase.
func (o *migrateOp) phase() int {
	if o.submitErr == nil && o.late {
		return phaseAfterMove
	}
	return phaseMain
}

func (o *migrateOp) apply(m *model, r *round, v *violations) {
	for _, c := range o.calls {
		if c.what == "items" || c.what == "cancelDraft" {
			if c.err != nil {
				v.add("%s: %s failed: %v", o, c.what, c.err)
			}
		}
	}
	if o.createErr != nil {
		v.add("%s: create failed: %v", o, o.createErr)
		return
	}
	o.judge(v, o, o.submitErr)
	for id, t := range o.rowWant {
		in := slices.Contains(o.imported, id)
		if (t == yes && !in) || (t == no && in) {
			v.add("%s: the model judged customer %d %v, the batch imported it: %v", o, id, t, in)
		}
	}
	recv := m.accts[o.receiver]
	b := &batch{ID: o.id, Receiver: o.receiver, Source: o.source, Status: o.status}
	if m.secondLevel(recv) {
		b.Distributor = recv.Parent
	}
	for _, row := range o.rows {
		if slices.Contains(o.imported, row.AccountID) {
			b.Items = append(b.Items, item{Customer: row.AccountID, Credit: row.Credit})
		}
	}
	m.batches[b.ID] = b
	if o.submitErr != nil {
		return
	}
	want := migration.StatusPendingSourceApproval
	if b.Distributor != 0 {
		want = migration.StatusPendingDistributorApproval
	}
	if o.status != want {
		v.add("%s: submitted as %s, the model expects %s", o, o.status, want)
	}
	for _, it := range b.Items {
		c := m.accts[it.Customer]
		if c.Batch != 0 || c.Unbinding != 0 {
			v.add("%s: batch %d holds customer %d, already in batch %d / unbinding %d", o, b.ID, c.ID, c.Batch, c.Unbinding)
		}
		c.Batch = b.ID
	}
}

// advanceOp moves a submitted batch one step: an approval, a rejection or
// a cancellation by a party (the right one, or on purpose the wrong one),
// or, once approved, its execution as the worker runs it
// (migration.ExecuteBatch, sometimes twice at once, as a duplicated task).
type advanceOp struct {
	base
	batch  int64
	action string // approve, approveNoAck, reject, cancel, execute, executeTwice
	actor  int64
	token  string
	// readToken reads the batch after its execution (the receiver's).
	readToken string
	// itemWant is the model's judgment of each customer at execution.
	itemWant map[int64]tri
	err      error
	status   migration.Status
	items    []*migration.Item
	result   []migration.ExecuteResult
}

func (o *advanceOp) String() string {
	return fmt.Sprintf("%s %s batch %d by %d", o.name, o.action, o.batch, o.actor)
}

func (o *advanceOp) executes() bool { return o.action == "execute" || o.action == "executeTwice" }

func (o *advanceOp) touch(r *round) {
	r.batchOp[o.batch] = true
}

// touchBatch registers what the step may do to the batch's customers.
func (o *advanceOp) touchBatch(r *round, b *batch) {
	ends := o.executes() || o.action == "reject" || (o.action == "cancel" && b.Status != migration.StatusExecuting)
	for _, it := range b.Items {
		if ends {
			r.mayEnd[it.Customer] = true
		}
		if o.executes() {
			r.moving[it.Customer] = true
			r.moveCredit[it.Customer] = it.Credit
			add(r.migIn, b.Receiver, it.Credit)
			r.incoming = append(r.incoming, [2]int64{b.Receiver, it.Customer})
		}
	}
}

func (o *advanceOp) predict(m *model, r *round) {
	b := m.batches[o.batch]
	o.want = succeeds
	switch o.action {
	case "approveNoAck", "wrong":
		o.want = refused
	case "cancel":
		if b.Status == migration.StatusExecuting {
			o.want = refused
		}
	case "execute", "executeTwice":
		o.itemWant = map[int64]tri{}
		recv := m.accts[b.Receiver]
		total := decimal.Zero
		for _, it := range b.Items {
			total = total.Add(it.Credit)
		}
		limLo, limHi := r.limitRange(m, recv)
		alLo, alHi := r.allocatedRange(m, recv)
		funded := total.LessThanOrEqual(limLo.Sub(alHi.Sub(total)))
		for _, it := range b.Items {
			t := r.migratable(m, it.Customer, b.Source, b.ID, false)
			switch {
			case t == yes && !funded:
				t = maybe
			case it.Credit.GreaterThan(limHi.Sub(alLo)):
				t = no
			}
			o.itemWant[it.Customer] = t
		}
	}
}

func (o *advanceOp) run(w *world) {
	switch o.action {
	case "approve", "wrong":
		o.err = o.do(w, o.token, "approve", func(ctx context.Context) error {
			b, err := w.migration.Approve(ctx, o.batch, true)
			if err == nil {
				o.status = b.Status
			}
			return err
		})
	case "approveNoAck":
		o.err = o.do(w, o.token, "approveWithoutStatement", func(ctx context.Context) error {
			_, err := w.migration.Approve(ctx, o.batch, false)
			return err
		})
	case "reject":
		o.err = o.do(w, o.token, "reject", func(ctx context.Context) error {
			b, err := w.migration.Reject(ctx, o.batch, "the invariants test says no")
			if err == nil {
				o.status = b.Status
			}
			return err
		})
	case "cancel":
		o.err = o.do(w, o.token, "cancel", func(ctx context.Context) error {
			b, err := w.migration.Cancel(ctx, o.batch)
			if err == nil {
				o.status = b.Status
			}
			return err
		})
	default:
		runs := 1
		if o.action == "executeTwice" {
			runs = 2
		}
		o.err = o.do(w, "", "execute", func(ctx context.Context) error {
			o.result = make([]migration.ExecuteResult, runs)
			errs := make([]error, runs)
			var wg sync.WaitGroup
			for i := range runs {
				wg.Go(func() { o.result[i], errs[i] = w.migration.ExecuteBatch(ctx, o.batch) })
			}
			wg.Wait()
			return errors.Join(errs...)
		})
		if o.err == nil {
			o.err = o.do(w, o.readToken, "read", func(ctx context.Context) error {
				b, err := w.migration.Get(ctx, o.batch)
				if err != nil {
					return err
				}
				o.status = b.Status
				o.items, _, _, err = w.migration.Items(ctx, b, 1000, 0)
				return err
			})
		}
	}
}

func (o *advanceOp) phase() int {
	switch {
	case o.executes():
		return phaseMove
	case o.action == "reject" || o.action == "cancel":
		return phaseEnd
	}
	return phaseMain
}

// nextStatus is the batch's status after an approval of its current step.
func nextStatus(s migration.Status) migration.Status {
	switch s {
	case migration.StatusPendingDistributorApproval:
		return migration.StatusPendingSourceApproval
	case migration.StatusPendingSourceApproval:
		return migration.StatusPendingInternalReview
	}
	return migration.StatusExecuting
}

func (o *advanceOp) apply(m *model, r *round, v *violations) {
	o.judge(v, o, o.err)
	if o.err != nil {
		return
	}
	b := m.batches[o.batch]
	var want migration.Status
	switch o.action {
	case "wrong", "approveNoAck":
		return // judged: it had to be refused
	case "approve":
		want = nextStatus(b.Status)
	case "reject", "cancel":
		want = migration.StatusRejected
		if o.action == "cancel" {
			want = migration.StatusCancelled
		}
		for _, it := range b.Items {
			m.accts[it.Customer].Batch = 0
		}
	default:
		o.applyExecution(m, b, v)
		return
	}
	if o.status != want {
		v.add("%s: the batch is %s, the model expects %s", o, o.status, want)
	}
	b.Status = o.status
}

// applyExecution moves the customers the execution migrated: each one's
// allocation returns to the source, the batch's credit comes from the
// receiver, and it moves under the receiver.
func (o *advanceOp) applyExecution(m *model, b *batch, v *violations) {
	finished := 0
	for _, res := range o.result {
		if res.Finished {
			finished++
		}
	}
	got := map[int64]*migration.Item{}
	failed := 0
	for _, it := range o.items {
		got[it.AccountID] = it
		if it.Status == migration.ItemFailed {
			failed++
		}
	}
	want := migration.StatusCompleted
	if failed > 0 {
		want = migration.StatusPartiallyCompleted
	}
	if o.status != want || finished != 1 {
		v.add("%s: the batch is %s and %d runs finished it; the model expects %s, finished once", o, o.status, finished, want)
	}
	b.Status = o.status
	recv := m.accts[b.Receiver]
	for _, it := range b.Items {
		c := m.accts[it.Customer]
		c.Batch = 0
		g := got[it.Customer]
		if g == nil {
			v.add("%s: customer %d is not in the batch any more", o, it.Customer)
			continue
		}
		t := o.itemWant[it.Customer]
		switch {
		case g.Status != migration.ItemMigrated && g.Status != migration.ItemFailed:
			v.add("%s: customer %d is %s after the execution", o, it.Customer, g.Status)
			continue
		case t == yes && g.Status != migration.ItemMigrated, t == no && g.Status != migration.ItemFailed:
			v.add("%s: customer %d is %s (%s), the model judged it %v", o, it.Customer, g.Status, g.Reason, t)
		}
		if g.Status != migration.ItemMigrated {
			continue
		}
		if !g.Credit.Equal(it.Credit) || g.EffectiveAt == nil {
			v.add("%s: customer %d migrated with credit %s, effective %v; the model expects %s", o, it.Customer, g.Credit, g.EffectiveAt, it.Credit)
		}
		if c.Parent != b.Source {
			v.add("%s: customer %d migrated, but in the model its partner is %d, not the source %d", o, c.ID, c.Parent, b.Source)
		}
		src := m.accts[c.Parent]
		src.Allocated = src.Allocated.Sub(c.Limit)
		c.Limit = it.Credit
		recv.Allocated = recv.Allocated.Add(it.Credit)
		m.move(c, recv.ID, models.KindCustomer)
	}
}

// associateOp has a partner invite a PERSONAL account by its user's email
// and a user of that account accept with the token the invitation email
// carried (lifecycle.Invite, lifecycle.Accept; DOMAIN.md §1): it becomes
// the partner's CUSTOMER, FROZEN until a budget is set and it is unfrozen.
type associateOp struct {
	base
	partner, account        int64
	partnerToken, userToken string
	email                   string
	err                     error
	got                     *models.Account
}

func (o *associateOp) String() string {
	return fmt.Sprintf("%s associate %d with %d", o.name, o.account, o.partner)
}

func (o *associateOp) touch(r *round) {
	r.statusOp[o.account] = true
	r.moving[o.account] = true
}

func (o *associateOp) predict(m *model, r *round) {
	a := m.accts[o.account]
	if a.Kind == models.KindPersonal && a.Status == models.StatusActive {
		o.want = succeeds
	} else {
		o.want = refused
	}
}

func (o *associateOp) run(w *world) {
	o.err = o.do(w, o.partnerToken, "invite", func(ctx context.Context) error {
		_, err := w.lifecycle.Invite(ctx, o.email)
		return err
	})
	if o.err != nil {
		return
	}
	// The token travels in the invitation email: its outbox row.
	var token string
	if err := w.st.DB.Raw(`SELECT payload->>'token' FROM outbox WHERE event_type = ? AND request_id = ?`,
		notify.EventInvitationSent, o.calls[0].rid).Scan(&token).Error; err != nil || token == "" {
		o.err = fmt.Errorf("the invitation's token: %v (%q)", err, token)
		return
	}
	o.err = o.do(w, o.userToken, "accept", func(ctx context.Context) (err error) {
		o.got, err = w.lifecycle.Accept(ctx, token)
		return err
	})
}

func (o *associateOp) phase() int { return phaseMove }

func (o *associateOp) apply(m *model, r *round, v *violations) {
	o.judge(v, o, o.err)
	if o.err != nil {
		return
	}
	a := m.accts[o.account]
	m.move(a, o.partner, models.KindCustomer)
	a.Status, a.Reason, a.Budget = models.StatusFrozen, models.FrozenNewCustomer, nil
	if o.got.Kind != a.Kind || o.got.ParentID == nil || *o.got.ParentID != o.partner || o.got.Status != a.Status {
		v.add("%s: answered %s under %v, %s", o, o.got.Kind, o.got.ParentID, o.got.Status)
	}
}
