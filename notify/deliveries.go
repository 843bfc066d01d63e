package notify

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// Deliveries lists what was sent to the users, contacts and webhook endpoints of the account
// accountID and its subtree, newest first: for the admins (ADMIN) of a
// partner or of the platform, within their scope (an account outside it is
// NOT_FOUND). after is the ID of the last delivery of the previous page.
func (s *Service) Deliveries(ctx context.Context, accountID int64, f DeliveryFilter, first int, after int64) (*DeliveryPage, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	acct, err := accounts.GetInScope(s.st.DB.WithContext(ctx), sc, accountID)
	if err != nil {
		return nil, err
	}
	if err := sc.Require(accounts.PermAudit); err != nil {
		return nil, err
	}
	q := s.st.DB.WithContext(ctx).Table("deliveries d").Joins("JOIN accounts a ON a.id = d.account_id").
		Where("a.path LIKE ?", accounts.SubtreeLike(acct.Path))
	return s.deliveryPage(ctx, q, f, first, after)
}

// deliveryPage reads one page of the deliveries q selects (aliased d),
// narrowed by f, newest first, after the delivery after, with their
// attempts and the count of the whole list.
func (s *Service) deliveryPage(ctx context.Context, q *gorm.DB, f DeliveryFilter, first int, after int64) (*DeliveryPage, error) {
	if err := accounts.ValidatePage(first); err != nil {
		return nil, err
	}
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
	var err error
	if page.Deliveries, err = s.withAttempts(ctx, rows); err != nil {
		return nil, err
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
		d, err := deliveryInScope(ctx, tx.DB.Clauses(clause.Locking{Strength: "UPDATE"}), id, accounts.PermManageUsers)
		if err != nil {
			return err
		}
		if d.Status != models.DeliveryFailed {
			return apperr.Preconditionf("only a FAILED delivery can be resent; this one is %s", d.Status)
		}
		now := tx.Now()
		d.Generation++
		d.Status = models.DeliveryPending
		d.UpdatedAt = now
		change := map[string]any{"generation": d.Generation, "status": d.Status, "claimed_until": nil, "updated_at": now}
		if d.Channel == models.ChannelWebhook {
			// A resent webhook gets a fresh retry window.
			until := now.Add(WebhookRetryWindow)
			d.RetryUntil = &until
			change["retry_until"] = until
		}
		if err := tx.DB.Model(&models.Delivery{}).Where("id = ?", id).Updates(change).Error; err != nil {
			return fmt.Errorf("resend delivery %d: %w", id, err)
		}
		if err := tx.Audit("notify.resend", d.AccountID, map[string]any{"deliveryId": id, "status": models.DeliveryFailed},
			map[string]any{"deliveryId": id, "status": d.Status, "generation": d.Generation}); err != nil {
			return err
		}
		out = DeliveryView{Delivery: *d}
		return tx.Emit(DeliveryResent{DeliveryID: id, TaskID: TaskID(d.Key, d.Generation), AccountID: d.AccountID})
	})
	if err != nil {
		return nil, err
	}
	list, err := s.withAttempts(ctx, []models.Delivery{out.Delivery})
	if err != nil {
		return nil, err
	}
	return &list[0], nil
}

// deliveryInScope loads delivery id through db when the caller's scope holds
// its recipient's account (NOT_FOUND otherwise, as for a delivery that does
// not exist) and the caller may do perm.
func deliveryInScope(ctx context.Context, db *gorm.DB, id int64, perm accounts.Permission) (*models.Delivery, error) {
	return ownedInScope(ctx, db, id, perm, "delivery", func(d *models.Delivery) int64 { return d.AccountID })
}

// ownedInScope loads the row id of T (what names it in errors) through db
// when the caller's scope holds the account that owns it (owner), and the
// caller may do perm. Outside the scope it is NOT_FOUND, as a row that does
// not exist is.
func ownedInScope[T any](ctx context.Context, db *gorm.DB, id int64, perm accounts.Permission, what string, owner func(*T) int64) (*T, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var row T
	if err := db.First(&row, id).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, apperr.NotFoundf("%s not found", what)
		}
		return nil, fmt.Errorf("load %s %d: %w", what, id, err)
	}
	if _, err := accounts.GetInScope(db.Session(&gorm.Session{NewDB: true}), sc, owner(&row)); err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return nil, apperr.NotFoundf("%s not found", what)
		}
		return nil, err
	}
	if err := sc.Require(perm); err != nil {
		return nil, err
	}
	return &row, nil
}

// withAttempts pairs deliveries with their attempts, oldest first, in one
// query.
func (s *Service) withAttempts(ctx context.Context, list []models.Delivery) ([]DeliveryView, error) {
	out := make([]DeliveryView, len(list))
	if len(list) == 0 {
		return out, nil
	}
	ids := make([]int64, len(list))
	for i, d := range list {
		ids[i] = d.ID
	}
	var attempts []models.DeliveryAttempt
	if err := s.st.DB.WithContext(ctx).Where("delivery_id IN ?", ids).Order("delivery_id, n").Find(&attempts).Error; err != nil {
		return nil, fmt.Errorf("list delivery attempts: %w", err)
	}
	byDelivery := map[int64][]models.DeliveryAttempt{}
	for _, a := range attempts {
		byDelivery[a.DeliveryID] = append(byDelivery[a.DeliveryID], a)
	}
	for i, d := range list {
		out[i] = DeliveryView{Delivery: d, AttemptLog: byDelivery[d.ID]}
	}
	return out, nil
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
	d, err := deliveryInScope(ctx, s.st.DB.WithContext(ctx), id, accounts.PermAudit)
	if err != nil {
		return nil, err
	}
	list, err := s.withAttempts(ctx, []models.Delivery{*d})
	if err != nil {
		return nil, err
	}
	return &list[0], nil
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
	for _, ch := range append(slices.Clone(models.AllChannels), models.ChannelWebhook) {
		out[ch] = map[models.DeliveryStatus]int64{models.DeliveryPending: 0, models.DeliverySending: 0}
	}
	for _, r := range rows {
		out[r.Channel][r.Status] = r.N
	}
	return out, nil
}
