package guard

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/store"
)

// Control is a control of a customer whose changes account_control_changes
// keeps.
type Control string

// The controls.
const (
	// ControlStatus: the account's status (freezes and unfreezes, by the
	// partner or by the system: overspend, arrears).
	ControlStatus Control = "STATUS"
	// ControlPurchaseBan: the partner's ban on new prepaid purchases.
	ControlPurchaseBan Control = "PURCHASE_BAN"
)

// maxControlReason bounds the reason of a control change.
const maxControlReason = 500

// MaxBatch is the most accounts one batch freeze or unfreeze names.
const MaxBatch = 1000

// ControlChange is one change of a customer's controls: who, when, the old
// and the new value, and the reason given.
type ControlChange struct {
	ID          int64
	AccountID   int64
	Control     Control
	OldValue    string
	NewValue    string
	Reason      string
	Actor       string
	ActorUserID *int64
	At          time.Time
}

// statusValue is how a status summary reads in the control history:
// "ACTIVE", or "FROZEN (OVERSPEND)".
func statusValue(m map[string]any) string {
	v := fmt.Sprint(m["status"])
	if r, ok := m["frozenReason"]; ok {
		v += " (" + fmt.Sprint(r) + ")"
	}
	return v
}

// logStatus records a change of an account's status (summaries before and
// after) in its control history, unless nothing visible changed.
func logStatus(tx *store.Tx, accountID int64, before, after map[string]any, note string) error {
	old, cur := statusValue(before), statusValue(after)
	if old == cur {
		return nil
	}
	return logControl(tx, accountID, ControlStatus, old, cur, note)
}

// logControl appends one row to the account's control history, in tx.
func logControl(tx *store.Tx, accountID int64, control Control, old, cur, reason string) error {
	actor := store.ActorFrom(tx.Context())
	var userID *int64
	if actor.UserID != 0 {
		userID = &actor.UserID
	}
	if err := tx.DB.Exec(`INSERT INTO account_control_changes (account_id, control, old_value, new_value, reason, actor, actor_user_id, at, request_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, accountID, control, old, cur, reason, actor.Label, userID, tx.Now(),
		store.RequestID(tx.Context())).Error; err != nil {
		return fmt.Errorf("record control change: %w", err)
	}
	return nil
}

// controlReason trims a reason and refuses an empty or too long one.
func controlReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" || utf8.RuneCountInString(reason) > maxControlReason {
		return "", apperr.Invalid("reason", "give a reason of 1 to %d characters", maxControlReason)
	}
	return reason, nil
}

// SetPurchaseBan bans (or allows again) a customer's new prepaid purchases
// (SUBSCRIPTION, RESERVED_INSTANCE are then DENIED with PURCHASE_BANNED;
// PAY_PER_USE is unaffected), with a reason. The same callers as Freeze
// (ADMIN or OPERATOR of a partner above it, or of the platform); setting
// the value the customer already has changes nothing. The change is in the
// customer's control history and the audit log, and its purchase guard row
// follows in the same transaction.
func (s *Service) SetPurchaseBan(ctx context.Context, customerID int64, banned bool, reason string) (*models.Account, error) {
	return s.control(ctx, customerID, func(tx *store.Tx, sc accounts.Scope) (*models.Account, error) {
		a, err := s.lockManaged(tx, sc, customerID, "banned from purchases")
		if err != nil {
			return nil, err
		}
		reason, err := controlReason(reason)
		if err != nil {
			return nil, err
		}
		if a.PurchaseBanned == banned {
			return a, nil
		}
		if err := tx.DB.Exec(`UPDATE accounts SET purchase_banned = ?, updated_at = ? WHERE id = ?`, banned, tx.Now(), a.ID).Error; err != nil {
			return nil, fmt.Errorf("set purchase ban: %w", err)
		}
		old := a.PurchaseBanned
		a.PurchaseBanned, a.UpdatedAt = banned, tx.Now()
		if err := tx.Audit("account.purchase_ban", a.ID, map[string]any{"purchaseBanned": old},
			map[string]any{"purchaseBanned": banned, "reason": reason}); err != nil {
			return nil, err
		}
		if err := logControl(tx, a.ID, ControlPurchaseBan, fmt.Sprint(old), fmt.Sprint(banned), reason); err != nil {
			return nil, err
		}
		if err := tx.Emit(accounts.AccountChanged{AccountID: a.ID, Change: "purchaseBan"}); err != nil {
			return nil, err
		}
		return a, Sync(tx, s.loc, a.ID)
	})
}

// ControlResult is what became of one account of a batch freeze or
// unfreeze: Account after the change, or the error code and message it was
// refused with (nothing changed for it).
type ControlResult struct {
	AccountID int64
	Account   *models.Account
	Code      apperr.Code
	Message   string
}

// FreezeAccounts freezes each of ids in mode with a reason, each in a
// transaction of its own, exactly as Freeze does one, and returns a result
// per id in the order given: an id refused (outside the scope: NOT_FOUND,
// not a customer: VALIDATION, ...) or repeated (DUPLICATE in the message,
// code VALIDATION) changes nothing and does not stop the others. At most
// MaxBatch ids.
func (s *Service) FreezeAccounts(ctx context.Context, ids []int64, mode models.FreezeMode, reason string) ([]ControlResult, error) {
	if !mode.IsValid() {
		return nil, apperr.Invalid("mode", "unknown freeze mode %q", mode)
	}
	return s.batch(ctx, ids, reason, func(tx *store.Tx, sc accounts.Scope, id int64, reason string) (*models.Account, error) {
		return s.freezeIn(tx, sc, id, mode, reason)
	})
}

// UnfreezeAccounts unfreezes each of ids with a reason, as FreezeAccounts
// freezes them (Unfreeze's rules for each).
func (s *Service) UnfreezeAccounts(ctx context.Context, ids []int64, reason string) ([]ControlResult, error) {
	return s.batch(ctx, ids, reason, func(tx *store.Tx, sc accounts.Scope, id int64, reason string) (*models.Account, error) {
		return s.unfreezeIn(tx, sc, id, reason)
	})
}

func (s *Service) batch(ctx context.Context, ids []int64, reason string, change func(tx *store.Tx, sc accounts.Scope, id int64, reason string) (*models.Account, error)) ([]ControlResult, error) {
	if _, err := accounts.ScopeOf(ctx); err != nil {
		return nil, err
	}
	if len(ids) == 0 || len(ids) > MaxBatch {
		return nil, apperr.Invalid("accountIds", "name 1 to %d accounts, got %d", MaxBatch, len(ids))
	}
	reason, err := controlReason(reason)
	if err != nil {
		return nil, err
	}
	out := make([]ControlResult, len(ids))
	seen := make(map[int64]bool, len(ids))
	for i, id := range ids {
		out[i].AccountID = id
		if seen[id] {
			out[i].Code, out[i].Message = apperr.Validation, "DUPLICATE: the account appears earlier in this batch"
			continue
		}
		seen[id] = true
		a, err := s.control(ctx, id, func(tx *store.Tx, sc accounts.Scope) (*models.Account, error) {
			return change(tx, sc, id, reason)
		})
		if err != nil {
			e, ok := apperr.As(err)
			if !ok {
				return nil, err
			}
			out[i].Code, out[i].Message = e.Code, e.Message
			continue
		}
		out[i].Account = a
	}
	return out, nil
}

// ControlChanges returns a page of an account's control history, newest
// first (NOT_FOUND outside the caller's scope).
func (s *Service) ControlChanges(ctx context.Context, accountID int64, first int, afterID int64) (*store.Page[*ControlChange], error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	db := s.st.DB.WithContext(ctx)
	if _, err := accounts.GetInScope(db, sc, accountID); err != nil {
		return nil, err
	}
	return store.PageOf[*ControlChange](db, "account_control_changes b", "b.account_id = ?", []any{accountID}, "-b.id", "b.id DESC", first, 500, afterID)
}
