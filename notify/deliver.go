package notify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"partnerd/apperr"
	"partnerd/models"
	"partnerd/notify/email"
	"partnerd/notify/sms"
	"partnerd/store"
)

// ErrInFlight is returned by Deliver when another worker holds the delivery
// (an attempt in flight whose lease has not run out); retry later.
var ErrInFlight = errors.New("delivery in flight in another worker")

// recordTimeout bounds the recording of an attempt's outcome, which runs even
// when the task's context was cancelled after the provider answered.
const recordTimeout = 15 * time.Second

// maxResponse bounds the provider response kept per attempt.
const maxResponse = 1000

// Deliver sends one delivery, at most once per its channel's guarantee:
//
//   - IN_SITE: the inbox row (unique per delivery) and the SENT mark commit in
//     one transaction: exactly once, whatever is retried or duplicated.
//   - SMS: the attempt is claimed (committed, with a lease) before the
//     provider is called and its outcome recorded after. A second task finds
//     the claim and waits; a claim whose worker died (lease run out, outcome
//     unknown) is sent again only through a provider that drops a second
//     message with the same ID (sms.Provider.Deduplicates: the webhook
//     provider's id is the delivery key); otherwise the delivery is marked
//     FAILED as "outcome unknown" rather than risk a second SMS, and an admin
//     may resend it.
//   - EMAIL: claimed and recorded the same way. One window remains, as small
//     as SMTP allows: the server accepted the message (its 250 reply after
//     DATA) and the worker died before recording it. The retry then sends it
//     again with the same Message-ID (derived from the delivery key), which
//     receivers use to drop the duplicate.
//
// A retryable failure returns an error so the queue retries with backoff;
// when final is true (the queue's last retry) it is recorded as FAILED
// instead. A permanent failure (4xx webhook answer, 5xx SMTP reply, invalid
// number...) is recorded as FAILED at once and Deliver returns nil. Every
// attempt is recorded with its time, outcome and the provider's answer.
func (s *Service) Deliver(ctx context.Context, deliveryID int64, final bool) error {
	// The common cases are one statement each: claim a PENDING email or SMS,
	// or write a PENDING in-site message. Anything else (final already, in
	// flight elsewhere, a lease that ran out) takes the slow path.
	c, ok, err := s.claimPending(ctx, deliveryID)
	if err != nil {
		return err
	}
	if ok {
		return s.send(ctx, c, final)
	}
	msg, ok, err := s.writeInbox(ctx, deliveryID)
	if err != nil {
		return err
	}
	if ok {
		s.publishInbox(ctx, msg)
		return nil
	}
	var d models.Delivery
	if err := s.st.DB.WithContext(ctx).First(&d, deliveryID).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return apperr.NotFoundf("delivery %d not found", deliveryID)
		}
		return fmt.Errorf("load delivery %d: %w", deliveryID, err)
	}
	if d.Status == models.DeliverySent || d.Status == models.DeliveryFailed || d.Channel == models.ChannelInSite {
		return nil
	}
	c, err = s.claim(ctx, deliveryID)
	if err != nil || c.skip {
		return err
	}
	return s.send(ctx, c, final)
}

// writeInboxSQL marks a PENDING in-site delivery SENT, records its attempt
// and writes its inbox message (unique per delivery), all or nothing.
const writeInboxSQL = `WITH d AS (
	UPDATE deliveries SET status = 'SENT', attempts = attempts + 1, sent_at = $2, updated_at = $2
	WHERE id = $1 AND status = 'PENDING' AND channel = 'IN_SITE'
	RETURNING id, account_id, user_id, event_type, subject, body_text, attempts, channel
), a AS (
	INSERT INTO delivery_attempts (delivery_id, n, channel, started_at, finished_at, outcome, response)
	SELECT id, attempts, channel, $2, $2, 'SENT', 'inbox message written' FROM d
)
INSERT INTO inbox_messages (delivery_id, account_id, user_id, event_type, subject, body, created_at)
SELECT id, account_id, user_id, event_type, subject, body_text, $2 FROM d
ON CONFLICT (delivery_id) DO NOTHING
RETURNING id, delivery_id, account_id, user_id, event_type, subject, body, created_at`

// writeInbox delivers a PENDING in-site delivery in one statement: the inbox
// row and the SENT mark commit together. ok is false when the delivery is
// not a PENDING in-site one.
func (s *Service) writeInbox(ctx context.Context, id int64) (*models.InboxMessage, bool, error) {
	var msgs []models.InboxMessage
	if err := store.Select(s.st.DB.WithContext(ctx), &msgs, writeInboxSQL, id, s.st.Now()); err != nil {
		return nil, false, fmt.Errorf("write inbox message of delivery %d: %w", id, err)
	}
	if len(msgs) == 0 {
		return nil, false, nil
	}
	return &msgs[0], true, nil
}

// publishInbox tells the live subscribers of the message's inbox. The row is
// committed; a lost live message only means the subscriber sees it on its
// next inbox query.
func (s *Service) publishInbox(ctx context.Context, msg *models.InboxMessage) {
	if s.hub == nil {
		return
	}
	topic := InboxAccountTopic(msg.AccountID)
	if msg.UserID != nil {
		topic = InboxUserTopic(*msg.UserID)
	}
	if err := s.hub.Publish(ctx, topic, []byte(strconv.FormatInt(msg.ID, 10))); err != nil {
		s.log.WarnContext(ctx, "publish inbox message", "delivery_id", msg.DeliveryID, "err", err)
	}
}

// claimPendingSQL claims a PENDING email or SMS delivery for its next
// attempt and records the attempt as started, in one statement.
const claimPendingSQL = `WITH d AS (
	UPDATE deliveries SET status = 'SENDING', attempts = attempts + 1, claimed_until = $3, updated_at = $2
	WHERE id = $1 AND status = 'PENDING' AND channel <> 'IN_SITE'
	RETURNING id, key, channel, address, locale, subject, body_text, body_html, attempts
), a AS (
	INSERT INTO delivery_attempts (delivery_id, n, channel, started_at)
	SELECT id, attempts, channel, $2 FROM d
)
SELECT * FROM d`

// claimPending claims a PENDING email or SMS delivery; ok is false when it
// is not one.
func (s *Service) claimPending(ctx context.Context, id int64) (claim, bool, error) {
	now := s.st.Now()
	var rows []models.Delivery
	if err := store.Select(s.st.DB.WithContext(ctx), &rows, claimPendingSQL, id, now, now.Add(s.lease)); err != nil {
		return claim{}, false, fmt.Errorf("claim delivery %d: %w", id, err)
	}
	if len(rows) == 0 {
		return claim{}, false, nil
	}
	return claim{d: rows[0], attempt: rows[0].Attempts}, true, nil
}

// claim is the outcome of claiming a delivery for an attempt.
type claim struct {
	d       models.Delivery
	attempt int  // the attempt's number
	taken   bool // a lease that ran out was taken over: the last outcome is unknown
	skip    bool // nothing to do (already final, or marked FAILED by the claim)
}

// send sends a claimed EMAIL or SMS delivery and records the outcome.
func (s *Service) send(ctx context.Context, c claim, final bool) error {
	d := c.d
	id := d.ID
	var (
		providerID, response string
		sendErr              error
	)
	switch d.Channel {
	case models.ChannelEmail:
		if s.mail == nil {
			sendErr = errors.New("this process has no email sender")
			break
		}
		var res email.Result
		res, sendErr = s.mail.Send(ctx, email.Message{Key: d.Key, To: d.Address, Subject: d.Subject,
			Text: d.BodyText, HTML: d.BodyHTML, Locale: string(d.Locale)})
		response = res.Response
	case models.ChannelSMS:
		if s.sms == nil {
			sendErr = errors.New("this process has no SMS provider")
			break
		}
		var res sms.Result
		res, sendErr = s.sms.Send(ctx, sms.Message{ID: d.Key, To: d.Address, Text: d.BodyText})
		providerID, response = res.ProviderID, res.Response
	}
	if sendErr == nil && s.afterSend != nil {
		if err := s.afterSend(); err != nil {
			return err
		}
	}

	outcome := models.OutcomeSent
	status := models.DeliverySent
	var lastErr *string
	if sendErr != nil {
		msg := sendErr.Error()
		lastErr = &msg
		if resp := permanentResponse(sendErr); resp != "" {
			response = resp
		}
		if response == "" {
			response = msg
		}
		switch {
		case email.IsPermanent(sendErr) || sms.IsPermanent(sendErr):
			outcome, status = models.OutcomeFailed, models.DeliveryFailed
		case final:
			outcome, status = models.OutcomeFailed, models.DeliveryFailed
			response = "gave up after the last retry: " + response
		default:
			outcome, status = models.OutcomeRetry, models.DeliveryPending
		}
	}
	// The provider has answered: record it even if the task was cancelled.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := s.record(rctx, d, c.attempt, outcome, status, truncate(response), providerID, lastErr); err != nil {
		return err
	}
	if status == models.DeliveryPending {
		return fmt.Errorf("deliver %s %d (attempt %d): %w", d.Channel, id, c.attempt, sendErr)
	}
	if status == models.DeliveryFailed {
		s.log.WarnContext(ctx, "delivery failed", "delivery_id", id, "channel", d.Channel, "attempt", c.attempt, "err", sendErr)
	}
	return nil
}

// claim takes the delivery for one attempt: PENDING, or SENDING with a lease
// that ran out (its worker died: the last attempt's outcome is recorded as
// UNKNOWN). It commits before anything is sent.
func (s *Service) claim(ctx context.Context, id int64) (claim, error) {
	var c claim
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		c = claim{}
		if err := tx.DB.Clauses(clause.Locking{Strength: "UPDATE"}).First(&c.d, id).Error; err != nil {
			return fmt.Errorf("lock delivery %d: %w", id, err)
		}
		d := &c.d
		now := tx.Now()
		switch d.Status {
		case models.DeliverySent, models.DeliveryFailed:
			c.skip = true
			return nil
		case models.DeliverySending:
			if d.ClaimedUntil != nil && d.ClaimedUntil.After(now) {
				return ErrInFlight
			}
			c.taken = true
			unknown := models.OutcomeUnknown
			if err := tx.DB.Model(&models.DeliveryAttempt{}).Where("delivery_id = ? AND outcome IS NULL", id).
				Updates(map[string]any{"outcome": unknown, "finished_at": now,
					"response": "the worker stopped during the attempt: outcome unknown"}).Error; err != nil {
				return fmt.Errorf("record unknown outcome of delivery %d: %w", id, err)
			}
			if d.Channel == models.ChannelSMS && (s.sms == nil || !s.sms.Deduplicates()) {
				c.skip = true
				msg := "an earlier attempt's outcome is unknown (its worker stopped during the provider call); not sent again so the phone cannot get it twice: resend it if it did not arrive"
				return tx.DB.Model(&models.Delivery{}).Where("id = ?", id).Updates(map[string]any{
					"status": models.DeliveryFailed, "last_error": msg, "claimed_until": nil, "updated_at": now}).Error
			}
		}
		c.attempt = d.Attempts + 1
		until := now.Add(s.lease)
		if err := tx.DB.Create(&models.DeliveryAttempt{DeliveryID: id, N: c.attempt, Channel: d.Channel, StartedAt: now}).Error; err != nil {
			return fmt.Errorf("start attempt %d of delivery %d: %w", c.attempt, id, err)
		}
		return tx.DB.Model(&models.Delivery{}).Where("id = ?", id).Updates(map[string]any{
			"status": models.DeliverySending, "attempts": c.attempt, "claimed_until": until, "updated_at": now}).Error
	})
	return c, err
}

// recordSQL writes an attempt's outcome and the delivery's new status in
// one statement. Only the claim holder records: a worker whose lease was
// taken over meanwhile must not overwrite the newer attempt.
const recordSQL = `WITH a AS (
	UPDATE delivery_attempts SET outcome = $3, finished_at = $4, response = $5
	WHERE delivery_id = $1 AND n = $2
)
UPDATE deliveries SET status = $6, claimed_until = NULL, updated_at = $4, last_error = $7,
	sent_at = CASE WHEN $6 = 'SENT' THEN $4::timestamptz END,
	provider_id = coalesce(nullif($8, ''), provider_id)
WHERE id = $1 AND attempts = $2 AND status = 'SENDING'`

// record writes an attempt's outcome and the delivery's new status.
func (s *Service) record(ctx context.Context, d models.Delivery, attempt int, outcome models.DeliveryOutcome,
	status models.DeliveryStatus, response, providerID string, lastErr *string) error {
	err := s.st.DB.WithContext(ctx).Exec(recordSQL, d.ID, attempt, outcome, s.st.Now(), response,
		string(status), lastErr, providerID).Error
	if err != nil {
		return fmt.Errorf("record attempt %d of delivery %d: %w", attempt, d.ID, err)
	}
	return nil
}

// permanentResponse is the provider's answer carried by a permanent error.
func permanentResponse(err error) string {
	var pe *email.PermanentError
	if errors.As(err, &pe) {
		return pe.Response
	}
	var ps *sms.PermanentError
	if errors.As(err, &ps) {
		return ps.Response
	}
	return ""
}

func truncate(s string) string {
	if len(s) <= maxResponse {
		return s
	}
	return strings.ToValidUTF8(s[:maxResponse], "") + "…"
}
