package guard

import (
	"context"
	"fmt"
	"time"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
)

// Freeze freezes a customer of the caller's subtree (ADMIN or OPERATOR of a
// partner above it, or of the platform): ACCOUNT stops purchases, renewals
// and changes; ACCOUNT_AND_RESOURCES also stops its running resources and
// schedules their release (and the data's deletion) after FREEZE_RETENTION,
// with reminders 3 days and 1 day before. Freezing again in the status the
// account already has changes nothing, except that a freeze for another
// reason (arrears, overspend, a new customer) becomes the partner's own
// (MANUAL: the end of arrears no longer lifts it); a FROZEN account can be frozen with
// its resources (the release counts from then); a FROZEN_WITH_RESOURCES one
// cannot be frozen back to ACCOUNT (PRECONDITION_FAILED: unfreeze it).
func (s *Service) Freeze(ctx context.Context, accountID int64, mode models.FreezeMode) (*models.Account, error) {
	return s.control(ctx, accountID, func(tx *store.Tx, sc accounts.Scope) (*models.Account, error) {
		return s.freezeIn(tx, sc, accountID, mode, "")
	})
}

// control runs one control change of accountID in a transaction of its own.
func (s *Service) control(ctx context.Context, accountID int64, change func(tx *store.Tx, sc accounts.Scope) (*models.Account, error)) (*models.Account, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var out *models.Account
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		var err error
		out, err = change(tx, sc)
		return err
	})
	return out, err
}

// freezeIn is Freeze in tx, with the reason the partner gave (note).
func (s *Service) freezeIn(tx *store.Tx, sc accounts.Scope, accountID int64, mode models.FreezeMode, note string) (*models.Account, error) {
	if !mode.IsValid() {
		return nil, apperr.Invalid("mode", "unknown freeze mode %q", mode)
	}
	a, err := s.lockManaged(tx, sc, accountID, "frozen")
	if err != nil {
		return nil, err
	}
	switch {
	case a.Status == mode.Status() && a.FrozenReason != nil && *a.FrozenReason == models.FrozenManual:
		return a, nil
	case a.Status == mode.Status():
		// Frozen for another reason already: the partner's freeze takes
		// it over, so the end of arrears no longer lifts it.
		return a, s.takeOver(tx, a, note)
	case a.Status == models.StatusFrozenWithResources:
		return nil, apperr.Preconditionf("the account's resources are stopped; unfreeze it to start them again")
	}
	return a, s.freeze(tx, a, mode, models.FrozenManual, note)
}

// Unfreeze makes a frozen customer ACTIVE again (ADMIN or OPERATOR of a
// partner above it, or of the platform). It is refused (PRECONDITION_FAILED)
// while the customer has no budget (every customer is a reseller-model
// customer, DOMAIN.md §4) and while it is in arrears without an exemption.
// Resources stopped by the freeze run again and a pending release is
// cancelled. Unfreezing an ACTIVE account changes nothing.
func (s *Service) Unfreeze(ctx context.Context, accountID int64) (*models.Account, error) {
	return s.control(ctx, accountID, func(tx *store.Tx, sc accounts.Scope) (*models.Account, error) {
		return s.unfreezeIn(tx, sc, accountID, "")
	})
}

// unfreezeIn is Unfreeze in tx, with the reason the partner gave (note).
func (s *Service) unfreezeIn(tx *store.Tx, sc accounts.Scope, accountID int64, note string) (*models.Account, error) {
	a, err := s.lockManaged(tx, sc, accountID, "unfrozen")
	if err != nil {
		return nil, err
	}
	if a.Status == models.StatusActive {
		return a, nil
	}
	r, err := loadRow(tx, a.ID)
	if err != nil {
		return nil, err
	}
	if r == nil || !r.hasBudget() {
		return nil, apperr.Preconditionf("set a budget before unfreezing: a reseller-model customer cannot be unfrozen without one")
	}
	cur := models.MonthOf(tx.Now(), s.loc).Key()
	if av := r.available(cur); av.IsNegative() && !r.ExemptPostpaid && !r.ExemptPrepaid {
		return nil, apperr.Preconditionf("the customer is in arrears (available credit %s): allocate credit or grant an arrears exemption first",
			models.FormatDecimal(av))
	}
	// Unfreezing over budget is the partner's decision: the overspend
	// action leaves this period at this amount alone.
	if spent := r.spent(cur); spent.GreaterThanOrEqual(*r.BudgetAmount) {
		period := periodOf(*r.BudgetType, cur)
		if err := tx.DB.Exec(`UPDATE budgets SET override_period = ?, override_amount = amount, updated_at = ? WHERE id = ?`,
			period, tx.Now(), *r.BudgetID).Error; err != nil {
			return nil, fmt.Errorf("record overspend override: %w", err)
		}
	}
	return a, s.unfreeze(tx, a, false, note)
}

// lockManaged locks the customer accountID for a freeze or an unfreeze by
// the caller: in scope (else NOT_FOUND), a CUSTOMER, not the caller's own
// account, and the caller may operate.
func (s *Service) lockManaged(tx *store.Tx, sc accounts.Scope, accountID int64, verb string) (*models.Account, error) {
	a, err := accounts.LockInScope(tx, sc, accountID)
	if err != nil {
		return nil, err
	}
	if err := sc.Require(accounts.PermOperate); err != nil {
		return nil, err
	}
	if a.Kind != models.KindCustomer {
		return nil, apperr.Invalid("accountId", "only customers are %s, not a %s", verb, a.Kind)
	}
	if p := sc.Principal(); !p.System && p.AccountID == a.ID {
		return nil, apperr.Forbiddenf("an account is %s by its partner, not by itself", verb)
	}
	return a, nil
}

// freeze freezes a (locked by the caller) in mode for reason: the account's
// status, its resources and the release schedule, the audit entry, the
// events (AccountFrozen is notified; its consumer wakes the release jobs up
// when they are due) and the guard row, in tx.
func (s *Service) freeze(tx *store.Tx, a *models.Account, mode models.FreezeMode, reason models.FrozenReason, note string) error {
	now := tx.Now()
	before := statusSummary(a)
	frozenAt := now
	if a.FrozenAt != nil {
		frozenAt = *a.FrozenAt
	}
	var releaseAt *time.Time
	stopped := 0
	if mode == models.FreezeAccountAndResources {
		r := now.Add(s.retention).Truncate(time.Microsecond)
		releaseAt = &r
		res := tx.DB.Exec(`UPDATE resources SET status = 'STOPPED', stopped_by_freeze = true, updated_at = ?
			WHERE customer_id = ? AND status = 'RUNNING'`, now, a.ID)
		if res.Error != nil {
			return fmt.Errorf("stop resources: %w", res.Error)
		}
		stopped = int(res.RowsAffected)
		if err := s.scheduleRelease(tx, a.ID, r, now); err != nil {
			return err
		}
	}
	status := mode.Status()
	if err := tx.DB.Exec(`UPDATE accounts SET status = ?, frozen_at = ?, frozen_reason = ?, release_at = ?, updated_at = ? WHERE id = ?`,
		status, frozenAt, reason, releaseAt, now, a.ID).Error; err != nil {
		return fmt.Errorf("freeze account %d: %w", a.ID, err)
	}
	a.Status, a.FrozenAt, a.FrozenReason, a.ReleaseAt, a.UpdatedAt = status, &frozenAt, &reason, releaseAt, now
	after := statusSummary(a)
	after["resourcesStopped"] = stopped
	if err := tx.Audit("account.freeze", a.ID, before, after); err != nil {
		return err
	}
	if err := logStatus(tx, a.ID, before, after, note); err != nil {
		return err
	}
	ev := notify.AccountFrozen{AccountID: a.ID, Mode: string(mode), Reason: string(reason),
		FrozenAt: frozenAt.UTC().Format(time.RFC3339), Resources: stopped}
	if releaseAt != nil {
		ev.ReleaseAt = releaseAt.UTC().Format(time.RFC3339)
	}
	if err := tx.Emit(ev, accounts.AccountChanged{AccountID: a.ID, Change: "status"}); err != nil {
		return err
	}
	s.log.InfoContext(tx.Context(), "account frozen", "account_id", a.ID, "mode", mode, "reason", reason, "request_id", store.RequestID(tx.Context()))
	return Sync(tx, s.loc, a.ID)
}

// takeOver makes the freeze of a (locked by the caller, frozen for another
// reason) the partner's own: reason MANUAL, nothing else changes.
func (s *Service) takeOver(tx *store.Tx, a *models.Account, note string) error {
	before := statusSummary(a)
	reason := models.FrozenManual
	if err := tx.DB.Exec(`UPDATE accounts SET frozen_reason = ?, updated_at = ? WHERE id = ?`, reason, tx.Now(), a.ID).Error; err != nil {
		return fmt.Errorf("freeze account %d: %w", a.ID, err)
	}
	a.FrozenReason, a.UpdatedAt = &reason, tx.Now()
	if err := tx.Audit("account.freeze", a.ID, before, statusSummary(a)); err != nil {
		return err
	}
	if err := logStatus(tx, a.ID, before, statusSummary(a), note); err != nil {
		return err
	}
	if err := tx.Emit(accounts.AccountChanged{AccountID: a.ID, Change: "status"}); err != nil {
		return err
	}
	return Sync(tx, s.loc, a.ID)
}

// scheduleRelease records the release of account id's resources at
// releaseAt and its reminders that are still in the future.
func (s *Service) scheduleRelease(tx *store.Tx, id int64, releaseAt, now time.Time) error {
	kinds, dues := []string{"RELEASE"}, []time.Time{releaseAt}
	for _, r := range reminders {
		if due := releaseAt.Add(-r.before); due.After(now) {
			kinds, dues = append(kinds, r.kind), append(dues, due)
		}
	}
	err := tx.DB.Exec(`INSERT INTO freeze_jobs (account_id, kind, release_at, due_at)
		SELECT ?, k, ?, d FROM unnest(?::text[], ?::timestamptz[]) AS u(k, d)
		ON CONFLICT DO NOTHING`, id, releaseAt, textArray(kinds), timeArray(dues)).Error
	if err != nil {
		return fmt.Errorf("schedule release of %d: %w", id, err)
	}
	return nil
}

// unfreeze makes a (locked by the caller) ACTIVE: resources stopped by the
// freeze run again, pending release jobs are cancelled; audit, events and
// the guard row follow in tx. automatic: the end of an arrears suspension.
func (s *Service) unfreeze(tx *store.Tx, a *models.Account, automatic bool, note string) error {
	now := tx.Now()
	before := statusSummary(a)
	reason := ""
	if a.FrozenReason != nil {
		reason = string(*a.FrozenReason)
	}
	started := 0
	if a.DataDeletedAt == nil {
		res := tx.DB.Exec(`UPDATE resources SET status = 'RUNNING', stopped_by_freeze = false, updated_at = ?
			WHERE customer_id = ? AND status = 'STOPPED' AND stopped_by_freeze`, now, a.ID)
		if res.Error != nil {
			return fmt.Errorf("start resources: %w", res.Error)
		}
		started = int(res.RowsAffected)
	}
	// Jobs a release batch holds right now are skipped, not waited for
	// (the batch locks them before the account): it finds the account
	// unfrozen and marks them STALE.
	if err := tx.DB.Exec(`UPDATE freeze_jobs SET done_at = ?, outcome = 'CANCELLED' WHERE id IN (
			SELECT id FROM freeze_jobs WHERE account_id = ? AND done_at IS NULL FOR UPDATE SKIP LOCKED)`,
		now, a.ID).Error; err != nil {
		return fmt.Errorf("cancel release of %d: %w", a.ID, err)
	}
	if err := tx.DB.Exec(`UPDATE accounts SET status = 'ACTIVE', frozen_at = NULL, frozen_reason = NULL, release_at = NULL, updated_at = ? WHERE id = ?`,
		now, a.ID).Error; err != nil {
		return fmt.Errorf("unfreeze account %d: %w", a.ID, err)
	}
	a.Status, a.FrozenAt, a.FrozenReason, a.ReleaseAt, a.UpdatedAt = models.StatusActive, nil, nil, nil, now
	after := statusSummary(a)
	after["resourcesStarted"] = started
	after["automatic"] = automatic
	if err := tx.Audit("account.unfreeze", a.ID, before, after); err != nil {
		return err
	}
	if err := logStatus(tx, a.ID, before, after, note); err != nil {
		return err
	}
	if err := tx.Emit(notify.AccountUnfrozen{AccountID: a.ID, Reason: reason, Automatic: automatic, Resources: started},
		accounts.AccountChanged{AccountID: a.ID, Change: "status"}); err != nil {
		return err
	}
	return Sync(tx, s.loc, a.ID)
}

// ReconcileArrears applies the arrears suspension of customer id as its
// guard row stands (DOMAIN.md §3): an ACTIVE customer in arrears with no
// exemption at all is frozen (reason ARREARS); a customer frozen for
// arrears that is out of arrears, or has been granted an exemption, is
// unfrozen automatically, and its budget evaluated again. Anything else is
// left alone. Idempotent: the consumer of ArrearsChanged and of exemption
// changes, and the enforcement sweep, call it.
func (s *Service) ReconcileArrears(ctx context.Context, id int64) error {
	return s.st.InTx(ctx, func(tx *store.Tx) error {
		a, err := accounts.Lock(tx, id)
		if err != nil || a == nil || a.Kind != models.KindCustomer {
			return err
		}
		r, err := loadRow(tx, id)
		if err != nil || r == nil {
			return err
		}
		cur := models.MonthOf(tx.Now(), s.loc).Key()
		suspended := r.available(cur).IsNegative() && !r.ExemptPostpaid && !r.ExemptPrepaid
		switch {
		case suspended && a.Status == models.StatusActive:
			return s.freeze(tx, a, models.FreezeAccount, models.FrozenArrears, "arrears")
		case !suspended && a.Status == models.StatusFrozen && a.FrozenReason != nil && *a.FrozenReason == models.FrozenArrears:
			if err := s.unfreeze(tx, a, true, "arrears cleared"); err != nil {
				return err
			}
			return s.evaluate(tx, a)
		}
		return nil
	})
}

// statusSummary is the audit summary of an account's freeze state.
func statusSummary(a *models.Account) map[string]any {
	m := map[string]any{"status": a.Status}
	if a.FrozenReason != nil {
		m["frozenReason"] = *a.FrozenReason
	}
	if a.FrozenAt != nil {
		m["frozenAt"] = a.FrozenAt.UTC()
	}
	if a.ReleaseAt != nil {
		m["releaseAt"] = a.ReleaseAt.UTC()
	}
	return m
}
