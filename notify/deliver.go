package notify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

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
	// The common cases are one statement each: claim a PENDING email or SMS
	// (which also tells the state of any other delivery), or write a PENDING
	// in-site message. A delivery in flight elsewhere or whose lease ran out
	// takes the slow path.
	batch, cur, err := s.claimPending(ctx, deliveryID)
	if err != nil {
		return err
	}
	if len(batch) > 0 {
		return s.sendBatch(ctx, batch, final)
	}
	switch {
	case cur == nil:
		return apperr.NotFoundf("delivery %d not found", deliveryID)
	case cur.Status == models.DeliverySent || cur.Status == models.DeliveryFailed:
		return nil
	case cur.Status == models.DeliverySending && cur.ClaimedUntil != nil && cur.ClaimedUntil.After(s.st.Now()):
		return ErrInFlight
	case cur.Channel == models.ChannelInSite:
		msg, ok, err := s.writeInbox(ctx, deliveryID)
		if err != nil {
			return err
		}
		if ok {
			s.publishInbox(ctx, msg)
		}
		return nil
	}
	c, err := s.claim(ctx, deliveryID)
	if err != nil || c.skip {
		return err
	}
	return s.sendBatch(ctx, []claim{c}, final)
}

// writeInboxSQL marks a PENDING in-site delivery SENT, records its attempt
// and writes its inbox message (unique per delivery), all or nothing.
const writeInboxSQL = `WITH d AS (
	UPDATE deliveries SET status = 'SENT', attempts = attempts + 1, sent_at = $2, updated_at = $2
	WHERE id = $1 AND status = 'PENDING' AND channel = 'IN_SITE'
	RETURNING id, account_id, user_id, event_type, subject, body_text, attempts, channel, event_at
), a AS (
	INSERT INTO delivery_attempts (delivery_id, n, channel, started_at, finished_at, outcome, response, event_at)
	SELECT id, attempts, channel, $2, $2, 'SENT', 'inbox message written', event_at FROM d
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

// emailBatch is how many emails (or webhooks) waiting for their first
// attempt one delivery task claims and sends at once, its own included: one
// commit claims them all (and, for emails, one records them all). The
// others' own tasks then find them done.
const emailBatch = 16

// claimPendingSQL claims a PENDING email, SMS or webhook delivery for its
// next attempt, and with an email (a webhook) up to $4 other emails
// (webhooks) waiting for their first attempt (newest first: their own tasks are the last in the queue, so they
// run once the batch is done; skipping any another worker holds), recording each
// attempt as started, in one statement. The claimed rows come back with
// claimed true; when the delivery asked for was not claimed, its row comes
// back alone, claimed false, with its status as cur.
const claimPendingSQL = `WITH own AS (
	SELECT id, channel FROM deliveries WHERE id = $1 AND status = 'PENDING' AND channel <> 'IN_SITE' FOR UPDATE
), emails AS (
	SELECT id FROM deliveries
	WHERE status = 'PENDING' AND channel = 'EMAIL' AND attempts = 0 AND id <> $1
		AND EXISTS (SELECT 1 FROM own WHERE channel = 'EMAIL')
	ORDER BY id DESC LIMIT $4 FOR UPDATE SKIP LOCKED
), hooks AS (
	SELECT id FROM deliveries
	WHERE status = 'PENDING' AND channel = 'WEBHOOK' AND attempts = 0 AND id <> $1
		AND EXISTS (SELECT 1 FROM own WHERE channel = 'WEBHOOK')
	ORDER BY id DESC LIMIT $4 FOR UPDATE SKIP LOCKED
), d AS (
	UPDATE deliveries x SET status = 'SENDING', attempts = x.attempts + 1, claimed_until = $3, updated_at = $2
	WHERE x.id IN (SELECT id FROM own UNION ALL SELECT id FROM emails UNION ALL SELECT id FROM hooks) AND x.status = 'PENDING'
	RETURNING x.id, x.key, x.outbox_id, x.event_type, x.channel, x.address, x.locale, x.subject, x.body_text, x.body_html,
		x.endpoint_id, x.retry_until, x.attempts, x.event_at
), a AS (
	INSERT INTO delivery_attempts (delivery_id, n, channel, started_at, event_at)
	SELECT id, attempts, channel, $2, event_at FROM d
)
SELECT d.*, NULL::timestamptz AS claimed_until, true AS claimed, 'SENDING' AS cur FROM d
UNION ALL
SELECT id, key, outbox_id, event_type, channel, address, locale, subject, body_text, body_html,
	endpoint_id, retry_until, attempts, event_at, claimed_until, false, status
FROM deliveries WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM d WHERE d.id = $1)`

// claimedRow is a row of claimPendingSQL.
type claimedRow struct {
	models.Delivery
	Claimed bool
	Cur     models.DeliveryStatus
}

// claimPending claims a PENDING email or SMS delivery, with a batch of other
// emails when it is one, the delivery asked for first. When it claims
// nothing it returns the delivery's current state instead (nil when there is
// no such delivery).
func (s *Service) claimPending(ctx context.Context, id int64) ([]claim, *models.Delivery, error) {
	now := s.st.Now()
	var rows []claimedRow
	if err := store.Select(s.st.DB.WithContext(ctx), &rows, claimPendingSQL, id, now, now.Add(s.lease), emailBatch-1); err != nil {
		return nil, nil, fmt.Errorf("claim delivery %d: %w", id, err)
	}
	var out []claim
	for _, r := range rows {
		if !r.Claimed {
			d := r.Delivery
			d.Status = r.Cur
			return nil, &d, nil
		}
		c := claim{d: r.Delivery, attempt: r.Attempts}
		if r.ID == id {
			out = append([]claim{c}, out...)
		} else {
			out = append(out, c)
		}
	}
	return out, nil, nil
}

// claim is the outcome of claiming a delivery for an attempt.
type claim struct {
	d       models.Delivery
	attempt int  // the attempt's number
	taken   bool // a lease that ran out was taken over: the last outcome is unknown
	skip    bool // nothing to do (already final, or marked FAILED by the claim)
}

// outcome is how one claimed attempt ended, ready to record.
type outcome struct {
	c          claim
	outcome    models.DeliveryOutcome
	status     models.DeliveryStatus
	response   string
	providerID string
	lastErr    *string
	err        error // the provider's error, when the attempt failed
}

// sendBatch sends claimed EMAIL or SMS deliveries (at once, the senders
// bound their connections) and records every outcome in one statement. The
// first claim is the task's own: final applies to it, and its retryable
// failure is returned so the queue retries it; the others' own tasks find
// them recorded.
func (s *Service) sendBatch(ctx context.Context, claims []claim, final bool) error {
	if claims[0].d.Channel == models.ChannelWebhook {
		return s.sendWebhooks(ctx, claims, final)
	}
	outs := make([]outcome, len(claims))
	var wg sync.WaitGroup
	for i, c := range claims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i] = s.attempt(ctx, c, final && i == 0)
		}()
	}
	wg.Wait()
	if s.afterSend != nil {
		for _, o := range outs {
			if o.err == nil {
				if err := s.afterSend(); err != nil {
					return err
				}
			}
		}
	}
	// The providers have answered: record it even if the task was cancelled.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := s.record(rctx, outs); err != nil {
		return err
	}
	for _, o := range outs {
		if o.status == models.DeliveryFailed {
			s.log.WarnContext(ctx, "delivery failed", "delivery_id", o.c.d.ID, "channel", o.c.d.Channel, "attempt", o.c.attempt, "err", o.err)
		}
	}
	if own := outs[0]; own.status == models.DeliveryPending {
		return fmt.Errorf("deliver %s %d (attempt %d): %w", own.c.d.Channel, own.c.d.ID, own.c.attempt, own.err)
	}
	return nil
}

// attempt makes one claimed attempt and says how it ended: SENT; FAILED for
// a permanent failure, or a retryable one on the final retry; else back to
// PENDING for a retry.
func (s *Service) attempt(ctx context.Context, c claim, final bool) outcome {
	d := c.d
	o := outcome{c: c, outcome: models.OutcomeSent, status: models.DeliverySent}
	switch d.Channel {
	case models.ChannelEmail:
		if s.mail == nil {
			o.err = errors.New("this process has no email sender")
			break
		}
		var res email.Result
		res, o.err = s.mail.Send(ctx, email.Message{Key: d.Key, To: d.Address, Subject: d.Subject,
			Text: d.BodyText, HTML: d.BodyHTML, Locale: string(d.Locale)})
		o.response = res.Response
	case models.ChannelSMS:
		if s.sms == nil {
			o.err = errors.New("this process has no SMS provider")
			break
		}
		var res sms.Result
		res, o.err = s.sms.Send(ctx, sms.Message{ID: d.Key, To: d.Address, Text: d.BodyText})
		o.providerID, o.response = res.ProviderID, res.Response
	}
	if o.err != nil {
		o.failed(permanentResponse(o.err), email.IsPermanent(o.err) || sms.IsPermanent(o.err), final, "gave up after the last retry: ")
	}
	o.response = truncate(o.response)
	return o
}

// failed records how a failed attempt (o.err) ends: FAILED when the failure
// is permanent, or on the final try (the response then starts with gaveUp);
// otherwise back to PENDING for a retry. resp, when not empty, is the
// provider's answer to keep; without one the error is kept.
func (o *outcome) failed(resp string, permanent, final bool, gaveUp string) {
	msg := o.err.Error()
	o.lastErr = &msg
	if resp != "" {
		o.response = resp
	}
	if o.response == "" {
		o.response = msg
	}
	switch {
	case permanent:
		o.outcome, o.status = models.OutcomeFailed, models.DeliveryFailed
	case final:
		o.outcome, o.status = models.OutcomeFailed, models.DeliveryFailed
		o.response = gaveUp + o.response
	default:
		o.outcome, o.status = models.OutcomeRetry, models.DeliveryPending
	}
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
		if err := tx.DB.Create(&models.DeliveryAttempt{DeliveryID: id, N: c.attempt, Channel: d.Channel, StartedAt: now, EventAt: d.EventAt}).Error; err != nil {
			return fmt.Errorf("start attempt %d of delivery %d: %w", c.attempt, id, err)
		}
		return tx.DB.Model(&models.Delivery{}).Where("id = ?", id).Updates(map[string]any{
			"status": models.DeliverySending, "attempts": c.attempt, "claimed_until": until, "updated_at": now}).Error
	})
	return c, err
}

// recordSQL writes the outcomes of attempts and the deliveries' new
// statuses in one statement (arrays, one element per attempt). Only the claim
// holder records: a worker whose lease was taken over meanwhile must not
// overwrite the newer attempt.
const recordSQL = `WITH v AS (
	SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
		AS v(id, n, outcome, response, status, last_error, provider_id)
), a AS (
	UPDATE delivery_attempts t SET outcome = v.outcome, finished_at = $8, response = v.response
	FROM v WHERE t.delivery_id = v.id AND t.n = v.n
)
UPDATE deliveries d SET status = v.status, claimed_until = NULL, updated_at = $8,
	last_error = nullif(v.last_error, ''),
	sent_at = CASE WHEN v.status = 'SENT' THEN $8::timestamptz END,
	provider_id = coalesce(nullif(v.provider_id, ''), d.provider_id)
FROM v WHERE d.id = v.id AND d.attempts = v.n AND d.status = 'SENDING'`

// record writes the outcomes of attempts.
func (s *Service) record(ctx context.Context, outs []outcome) error {
	n := len(outs)
	ids, attempts := make([]int64, n), make([]int32, n)
	outcomes, responses, statuses, lastErrs, providers := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, o := range outs {
		ids[i], attempts[i] = o.c.d.ID, int32(o.c.attempt)
		outcomes[i], responses[i], statuses[i], providers[i] = string(o.outcome), o.response, string(o.status), o.providerID
		if o.lastErr != nil {
			lastErrs[i] = *o.lastErr
		}
	}
	if _, err := s.st.SQL.ExecContext(ctx, recordSQL, ids, attempts, outcomes, responses, statuses, lastErrs, providers, s.st.Now()); err != nil {
		return fmt.Errorf("record %d attempts (delivery %d first): %w", n, ids[0], err)
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
