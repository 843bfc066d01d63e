package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"gorm.io/gorm"

	"partnerd/models"
	"partnerd/notify/webhook"
	"partnerd/store"
)

// hookEvent is an event of a fan-out batch as webhooks see it: the
// accounts it is about, or, for a test event, the one endpoint it goes to.
type hookEvent struct {
	Event
	accounts []int64
	endpoint int64
}

// healthStep is how stale an endpoint's lastSuccessAt and lastFailureAt may
// be: they are written at most that often.
const healthStep = 10 * time.Second

// subjects are the accounts an event told to auds is about: each audience's
// account, and for one told to an account's parent, that account.
func subjects(auds []Audience) []int64 {
	var out []int64
	for _, a := range auds {
		for _, id := range []int64{a.Account, a.ParentOf} {
			if id != 0 && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	return out
}

// webhookBody is the JSON body of a webhook delivery.
type webhookBody struct {
	ID   string          `json:"id"`
	Type string          `json:"type"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data"`
}

// webhookTargetsSQL finds, in one statement, the enabled endpoints of every
// partner above (or at) the accounts $1 — the ancestors are read from each
// account's path, so the partial index on enabled endpoints does the work —
// and the endpoints $2 (test events, enabled or not).
const webhookTargetsSQL = `SELECT x.id AS account_id, e.id AS endpoint_id, e.account_id AS owner_id, e.url, e.event_types
FROM accounts x
JOIN webhook_endpoints e ON e.enabled
	AND e.account_id = ANY (string_to_array(trim(both '/' from x.path), '/')::bigint[])
WHERE x.id IN ?
UNION ALL
SELECT 0, e.id, e.account_id, e.url, e.event_types FROM webhook_endpoints e WHERE e.id IN ?`

// webhookRows builds the WEBHOOK deliveries a fan-out batch owes: one per
// (event, endpoint), the endpoint subscribed to the event's type (a test
// event goes to its endpoint alone). It costs one statement.
func (s *Service) webhookRows(db *gorm.DB, evs []hookEvent, now time.Time) ([]models.Delivery, error) {
	var accts, eps []int64
	for _, ev := range evs {
		accts = append(accts, ev.accounts...)
		if ev.endpoint != 0 {
			eps = append(eps, ev.endpoint)
		}
	}
	if len(accts) == 0 && len(eps) == 0 {
		return nil, nil
	}
	var targets []struct {
		AccountID  int64
		EndpointID int64
		OwnerID    int64
		URL        string `gorm:"column:url"`
		EventTypes store.Strings
	}
	if err := store.Select(db, &targets, webhookTargetsSQL, append(accts, 0), append(eps, 0)); err != nil {
		return nil, fmt.Errorf("find webhook endpoints: %w", err)
	}
	if len(targets) == 0 {
		return nil, nil
	}
	until := now.Add(WebhookRetryWindow)
	var rows []models.Delivery
	for _, ev := range evs {
		seen := map[int64]bool{}
		for _, t := range targets {
			match := false
			if ev.endpoint != 0 {
				match = t.AccountID == 0 && t.EndpointID == ev.endpoint
			} else {
				match = t.AccountID != 0 && slices.Contains(ev.accounts, t.AccountID) && slices.Contains(t.EventTypes, ev.Type)
			}
			if !match || seen[t.EndpointID] {
				continue
			}
			seen[t.EndpointID] = true
			body, err := json.Marshal(webhookBody{ID: WebhookEventID(ev.OutboxID), Type: ev.Type, Time: ev.At.UTC(), Data: ev.Payload})
			if err != nil {
				return nil, fmt.Errorf("webhook body of outbox %d: %w", ev.OutboxID, err)
			}
			ep := t.EndpointID
			rows = append(rows, models.Delivery{
				Key:        strconv.FormatInt(ev.OutboxID, 10) + ":w" + strconv.FormatInt(ep, 10) + ":" + string(models.ChannelWebhook),
				OutboxID:   ev.OutboxID,
				EventAt:    ev.At,
				EventType:  ev.Type,
				Channel:    models.ChannelWebhook,
				AccountID:  t.OwnerID,
				Address:    t.URL,
				Locale:     models.LocaleEnUS,
				Subject:    ev.Type,
				BodyText:   string(body),
				EndpointID: &ep,
				RetryUntil: &until,
			})
		}
	}
	return rows, nil
}

// sendWebhooks makes the claimed attempts of a batch of WEBHOOK deliveries
// at once, each recorded on its own; the first claim is the task's own:
// final applies to it, and its retryable failure is returned so the queue
// retries it. The others' own tasks find them recorded.
func (s *Service) sendWebhooks(ctx context.Context, claims []claim, final bool) error {
	errs := make([]error, len(claims))
	var wg sync.WaitGroup
	for i, c := range claims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.sendWebhook(ctx, c, final && i == 0)
		}()
	}
	wg.Wait()
	return errs[0]
}

// sendWebhook makes one claimed attempt at a WEBHOOK delivery and records
// it with the endpoint's health in one transaction. A retryable failure is
// returned so the queue retries; past the delivery's retry window (or on
// the queue's last retry: final) it is FAILED instead.
func (s *Service) sendWebhook(ctx context.Context, c claim, final bool) error {
	d := c.d
	now := s.st.Now()
	if d.RetryUntil != nil && !now.Before(*d.RetryUntil) {
		final = true
	}
	o := outcome{c: c, outcome: models.OutcomeSent, status: models.DeliverySent}
	var ep WebhookEndpoint
	health := false // whether the outcome counts for the endpoint's health
	permanent := false
	switch err := s.st.DB.WithContext(ctx).First(&ep, *d.EndpointID).Error; {
	case err != nil:
		o.err = fmt.Errorf("load webhook endpoint %d: %w", *d.EndpointID, err)
	case !ep.Enabled && d.EventType != EventWebhookTest:
		o.err, permanent = errors.New("the endpoint is disabled"), true
	case s.hooks == nil:
		o.err = errors.New("this process has no webhook sender")
	default:
		health = d.EventType != EventWebhookTest
		var res webhook.Result
		res, o.err = s.hooks.Send(ctx, webhook.Request{URL: ep.URL, EventID: WebhookEventID(d.OutboxID), EventType: d.EventType,
			DeliveryKey: d.Key, Body: []byte(d.BodyText), Secrets: ep.signingSecrets(now), At: now})
		o.response = res.Response
	}
	if o.err != nil {
		o.failed("", permanent, final, "gave up after 24 hours of retries: ")
	}
	o.response = truncate(o.response)
	// The endpoint has answered: record it even if the task was cancelled.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := s.recordWebhook(rctx, o, health); err != nil {
		return err
	}
	if o.status == models.DeliveryPending {
		return fmt.Errorf("deliver webhook %d (attempt %d): %w", d.ID, c.attempt, o.err)
	}
	if o.status == models.DeliveryFailed {
		s.log.WarnContext(ctx, "webhook delivery failed", "delivery_id", d.ID, "endpoint_id", *d.EndpointID, "attempt", c.attempt, "err", o.err)
	}
	return nil
}

// recordWebhookSQL records an attempt's outcome and the delivery's new
// status — only the claim holder does: a worker whose lease was taken over
// must not overwrite the newer attempt — and, for a success that counts
// for the endpoint's health, clears its failure record, in one statement.
// The endpoint's row is written only when its health changes or its last
// success is older than healthStep: every delivery to the endpoint would
// otherwise queue on that one row lock. It returns how many deliveries it
// recorded (0 or 1).
const recordWebhookSQL = `WITH a AS (
	UPDATE delivery_attempts SET outcome = @outcome, finished_at = @now, response = @response WHERE delivery_id = @id AND n = @n
), d AS (
	UPDATE deliveries SET status = @status, claimed_until = NULL, updated_at = @now, last_error = @err, sent_at = @sent
	WHERE id = @id AND attempts = @n AND status = 'SENDING' RETURNING id
), e AS (
	UPDATE webhook_endpoints SET failing_since = NULL, last_success_at = @now
	WHERE CAST(@healthy AS boolean) AND id = @endpoint AND EXISTS (SELECT 1 FROM d)
		AND (failing_since IS NOT NULL OR last_success_at IS NULL OR last_success_at < @step)
)
SELECT count(*) FROM d`

// recordWebhook writes an attempt's outcome and, when health, the
// endpoint's: a success clears its failure record, a failure starts it (or
// extends it), and one that has lasted WebhookFailingLimit disables the
// endpoint, fails its waiting deliveries and tells its partner's admins —
// all in one transaction. A success, or an outcome that does not count,
// is one statement.
func (s *Service) recordWebhook(ctx context.Context, o outcome, health bool) error {
	d := o.c.d
	record := func(db *gorm.DB, now time.Time) (int64, error) {
		var sent *time.Time
		if o.status == models.DeliverySent {
			sent = &now
		}
		var n int64
		err := db.Raw(recordWebhookSQL, map[string]any{"outcome": o.outcome, "now": now, "response": o.response, "id": d.ID,
			"n": o.c.attempt, "status": o.status, "err": o.lastErr, "sent": sent, "endpoint": *d.EndpointID,
			"healthy": health && o.status == models.DeliverySent, "step": now.Add(-healthStep)}).Scan(&n).Error
		return n, err
	}
	var err error
	if !health || o.status == models.DeliverySent {
		_, err = record(s.st.DB.WithContext(ctx), s.st.Now())
	} else {
		err = s.st.InTx(ctx, func(tx *store.Tx) error {
			now := tx.Now()
			n, err := record(tx.DB, now)
			if err != nil || n == 0 {
				return err
			}
			var ep WebhookEndpoint
			if err := tx.DB.Raw(`UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, ?), last_failure_at = ?
				WHERE id = ? AND enabled AND (failing_since IS NULL OR last_failure_at IS NULL OR last_failure_at < ? OR failing_since <= ?)
				RETURNING *`, now, now, *d.EndpointID, now.Add(-healthStep), now.Add(-WebhookFailingLimit)).Scan(&ep).Error; err != nil {
				return fmt.Errorf("record endpoint failure: %w", err)
			}
			if ep.ID == 0 || ep.FailingSince == nil || now.Sub(*ep.FailingSince) < WebhookFailingLimit {
				return nil
			}
			return s.disableFailing(tx, &ep, d.ID, o.response)
		})
	}
	if err != nil {
		return fmt.Errorf("record webhook delivery %d: %w", d.ID, err)
	}
	return nil
}

// disableFailing disables the endpoint ep, which has failed every delivery
// for WebhookFailingLimit (the last being delivery current, with lastError),
// fails its other waiting deliveries and tells its partner's admins.
func (s *Service) disableFailing(tx *store.Tx, ep *WebhookEndpoint, current int64, lastError string) error {
	now := tx.Now()
	since := ep.FailingSince.UTC().Format("2006-01-02 15:04 UTC")
	reason := "disabled automatically: every delivery failed since " + since
	if err := tx.DB.Exec(`UPDATE webhook_endpoints SET enabled = false, disabled_reason = ?, updated_at = ? WHERE id = ?`,
		reason, now, ep.ID).Error; err != nil {
		return fmt.Errorf("disable webhook endpoint %d: %w", ep.ID, err)
	}
	if err := tx.DB.Exec(`UPDATE deliveries SET status = 'FAILED', last_error = 'the endpoint was disabled', updated_at = ?
		WHERE endpoint_id = ? AND status = 'PENDING' AND id <> ? AND event_type <> ?`, now, ep.ID, current, EventWebhookTest).Error; err != nil {
		return fmt.Errorf("fail the waiting deliveries of webhook endpoint %d: %w", ep.ID, err)
	}
	before := auditView(ep)
	ep.Enabled, ep.DisabledReason = false, &reason
	if err := tx.Audit("webhook.disable", ep.AccountID, before, auditView(ep)); err != nil {
		return err
	}
	return tx.Emit(WebhookEndpointDisabled{EndpointID: ep.ID, PartnerID: ep.AccountID, URL: ep.URL, FailingSince: since, LastError: lastError})
}
