package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/store"
)

// EventDeliveryResent is the internal event of a resend: its consumer
// enqueues the delivery's new generation. It is not in the catalogue
// (nobody is notified of it).
const EventDeliveryResent = "notify.delivery_resent"

// DeliveryResent is emitted when an admin resends a FAILED delivery.
type DeliveryResent struct {
	DeliveryID int64  `json:"deliveryId"`
	TaskID     string `json:"taskId"`
	AccountID  int64  `json:"accountId"`
}

// EventType implements store.Event.
func (DeliveryResent) EventType() string { return EventDeliveryResent }

// Queue implements store.QueuedEvent.
func (DeliveryResent) Queue() string { return "notifications" }

// EventAccountID implements store.AccountEvent.
func (e DeliveryResent) EventAccountID() int64 { return e.AccountID }

// DeliveryFilter narrows Deliveries; nil fields do not filter.
type DeliveryFilter struct {
	Status  *models.DeliveryStatus
	Channel *models.Channel
}

// DeliveryView is a delivery with its attempts, oldest first.
type DeliveryView struct {
	models.Delivery
	AttemptLog []models.DeliveryAttempt
}

// DeliveryPage is one page of deliveries, newest first.
type DeliveryPage struct {
	Deliveries []DeliveryView
	HasNext    bool
	Total      int64
}

// Deliveries lists what was sent to the users and contacts of the account
// accountID and its subtree, newest first: for the admins (ADMIN) of a
// partner or of the platform, within their scope (an account outside it is
// NOT_FOUND). after is the ID of the last delivery of the previous page.
func (s *Service) Deliveries(ctx context.Context, accountID int64, f DeliveryFilter, first int, after int64) (*DeliveryPage, error) {
	sc, path, err := s.accountInScope(ctx, s.st.DB.WithContext(ctx), accountID)
	if err != nil {
		return nil, err
	}
	if err := sc.Require(accounts.PermAudit); err != nil {
		return nil, err
	}
	if err := accounts.ValidatePage(first); err != nil {
		return nil, err
	}
	q := s.st.DB.WithContext(ctx).Table("deliveries d").Joins("JOIN accounts a ON a.id = d.account_id").
		Where("a.path LIKE ?", accounts.SubtreeLike(path))
	if f.Status != nil {
		q = q.Where("d.status = ?", *f.Status)
	}
	if f.Channel != nil {
		q = q.Where("d.channel = ?", *f.Channel)
	}
	page := &DeliveryPage{}
	if err := q.Session(&gorm.Session{}).Count(&page.Total).Error; err != nil {
		return nil, fmt.Errorf("count deliveries: %w", err)
	}
	if after > 0 {
		q = q.Where("d.id < ?", after)
	}
	var rows []models.Delivery
	if err := q.Select("d.*").Order("d.id DESC").Limit(first + 1).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	if len(rows) > first {
		rows, page.HasNext = rows[:first], true
	}
	ids := make([]int64, len(rows))
	for i, d := range rows {
		ids[i] = d.ID
	}
	var attempts []models.DeliveryAttempt
	if len(ids) > 0 {
		if err := s.st.DB.WithContext(ctx).Where("delivery_id IN ?", ids).Order("delivery_id, n").Find(&attempts).Error; err != nil {
			return nil, fmt.Errorf("list delivery attempts: %w", err)
		}
	}
	byDelivery := map[int64][]models.DeliveryAttempt{}
	for _, a := range attempts {
		byDelivery[a.DeliveryID] = append(byDelivery[a.DeliveryID], a)
	}
	for _, d := range rows {
		page.Deliveries = append(page.Deliveries, DeliveryView{Delivery: d, AttemptLog: byDelivery[d.ID]})
	}
	return page, nil
}

// Resend sends a FAILED delivery again, as a new generation of the same
// delivery (same key, same rendered message): for an admin (ADMIN) whose
// scope holds the recipient's account. Any other status is
// PRECONDITION_FAILED. The queue task is enqueued through the outbox.
func (s *Service) Resend(ctx context.Context, id int64) (*DeliveryView, error) {
	var out DeliveryView
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		var d models.Delivery
		if err := tx.DB.Clauses(clause.Locking{Strength: "UPDATE"}).First(&d, id).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return apperr.NotFoundf("delivery not found")
			}
			return fmt.Errorf("lock delivery %d: %w", id, err)
		}
		sc, _, err := s.accountInScope(ctx, tx.DB, d.AccountID)
		if err != nil {
			if apperr.CodeOf(err) == apperr.NotFound {
				return apperr.NotFoundf("delivery not found")
			}
			return err
		}
		if err := sc.Require(accounts.PermManageUsers); err != nil {
			return err
		}
		if d.Status != models.DeliveryFailed {
			return apperr.Preconditionf("only a FAILED delivery can be resent; this one is %s", d.Status)
		}
		now := tx.Now()
		d.Generation++
		d.Status = models.DeliveryPending
		d.UpdatedAt = now
		if err := tx.DB.Model(&models.Delivery{}).Where("id = ?", id).Updates(map[string]any{
			"generation": d.Generation, "status": d.Status, "claimed_until": nil, "updated_at": now}).Error; err != nil {
			return fmt.Errorf("resend delivery %d: %w", id, err)
		}
		if err := tx.Audit("notify.resend", d.AccountID, map[string]any{"deliveryId": id, "status": models.DeliveryFailed},
			map[string]any{"deliveryId": id, "status": d.Status, "generation": d.Generation}); err != nil {
			return err
		}
		out = DeliveryView{Delivery: d}
		return tx.Emit(DeliveryResent{DeliveryID: id, TaskID: TaskID(d.Key, d.Generation), AccountID: d.AccountID})
	})
	if err != nil {
		return nil, err
	}
	if err := s.st.DB.WithContext(ctx).Where("delivery_id = ?", id).Order("n").Find(&out.AttemptLog).Error; err != nil {
		return nil, fmt.Errorf("list delivery attempts: %w", err)
	}
	return &out, nil
}

// accountInScope returns the caller's scope and the path of accountID, or
// NOT_FOUND when the account is outside the scope or does not exist.
func (s *Service) accountInScope(ctx context.Context, db *gorm.DB, accountID int64) (accounts.Scope, string, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return sc, "", err
	}
	var path string
	if err := db.Raw(`SELECT path FROM accounts WHERE id = ?`, accountID).Scan(&path).Error; err != nil {
		return sc, "", fmt.Errorf("load account %d: %w", accountID, err)
	}
	if path == "" || !sc.Contains(path) {
		return sc, "", accounts.NotFound("account")
	}
	return sc, path, nil
}

// Stuck returns the deliveries that should have a queue task by now but may
// have lost it (Redis lost its data, or an enqueue failed after the fan-out
// committed): PENDING and untouched for olderThan, or SENDING with a lease
// that ran out more than olderThan ago. Re-enqueueing them under their task
// IDs is safe: a task that still exists refuses the duplicate, and Deliver
// is idempotent. At most limit are returned, oldest first.
func (s *Service) Stuck(ctx context.Context, olderThan time.Duration, limit int) ([]Pending, error) {
	cutoff := s.st.Now().Add(-olderThan)
	var rows []struct {
		ID         int64
		Key        string
		Generation int
		Channel    models.Channel
	}
	err := s.st.DB.WithContext(ctx).Raw(`SELECT id, key, generation, channel FROM deliveries
		WHERE status IN ('PENDING','SENDING') AND updated_at < ?
			AND (status = 'PENDING' OR claimed_until < ?)
		ORDER BY updated_at LIMIT ?`, cutoff, cutoff, limit).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("list stuck deliveries: %w", err)
	}
	out := make([]Pending, len(rows))
	for i, r := range rows {
		out[i] = Pending{DeliveryID: r.ID, Channel: r.Channel, TaskID: TaskID(r.Key, r.Generation)}
	}
	return out, nil
}

// IsNode marks a delivery as a GraphQL Node.
func (DeliveryView) IsNode() {}

// Delivery returns one delivery with its attempts, for an admin (ADMIN)
// whose scope holds the recipient's account; any other is NOT_FOUND.
func (s *Service) Delivery(ctx context.Context, id int64) (*DeliveryView, error) {
	var d models.Delivery
	if err := s.st.DB.WithContext(ctx).First(&d, id).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, apperr.NotFoundf("delivery not found")
		}
		return nil, fmt.Errorf("load delivery %d: %w", id, err)
	}
	sc, _, err := s.accountInScope(ctx, s.st.DB.WithContext(ctx), d.AccountID)
	if err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return nil, apperr.NotFoundf("delivery not found")
		}
		return nil, err
	}
	if err := sc.Require(accounts.PermAudit); err != nil {
		return nil, err
	}
	out := &DeliveryView{Delivery: d}
	if err := s.st.DB.WithContext(ctx).Where("delivery_id = ?", id).Order("n").Find(&out.AttemptLog).Error; err != nil {
		return nil, fmt.Errorf("list delivery attempts: %w", err)
	}
	return out, nil
}

// OpenCount is the number of deliveries not yet final, by channel and status
// (PENDING or SENDING), for metrics: it reads only the open-deliveries index.
func (s *Service) OpenCount(ctx context.Context) (map[models.Channel]map[models.DeliveryStatus]int64, error) {
	var rows []struct {
		Channel models.Channel
		Status  models.DeliveryStatus
		N       int64
	}
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT channel, status, count(*) AS n FROM deliveries
		WHERE status IN ('PENDING','SENDING') GROUP BY channel, status`).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("count open deliveries: %w", err)
	}
	out := map[models.Channel]map[models.DeliveryStatus]int64{}
	for _, ch := range models.AllChannels {
		out[ch] = map[models.DeliveryStatus]int64{models.DeliveryPending: 0, models.DeliverySending: 0}
	}
	for _, r := range rows {
		out[r.Channel][r.Status] = r.N
	}
	return out, nil
}
