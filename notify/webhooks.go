package notify

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/notify/webhook"
	"partnerd/store"
)

// Webhooks (issue 14, point 1). A partner registers endpoints that receive
// the events of its subtree. The rules:
//
//   - An endpoint belongs to a partner (DISTRIBUTOR or RESELLER); its ADMIN,
//     or an ADMIN of a partner above it (the platform, a distributor for its
//     second-level reseller), manages it through the scope check of
//     accounts. At most MaxWebhookEndpoints per partner.
//   - It subscribes to event types of the notification catalogue. An event
//     goes to every enabled endpoint subscribed to its type whose partner's
//     subtree holds one of the accounts the event is about (those its
//     notifications are addressed to, and for an event told to an account's
//     parent, that account): a distributor's endpoint also hears of its
//     second-level resellers' customers.
//   - Deliveries are rows of the one delivery engine (channel WEBHOOK, key
//     "<event>:w<endpoint>:WEBHOOK"): created by the fan-out of the event,
//     claimed with a lease, every attempt logged. The body is rendered once,
//     at the fan-out: {"id","type","time","data"}, data being the event's
//     payload; each attempt signs it anew (webhook.Signature over the
//     attempt's timestamp and the body). Receivers deduplicate by the event
//     id: a worker that dies during the request leaves the outcome unknown,
//     and the delivery is sent again.
//   - A delivery is retried with backoff until WebhookRetryWindow after it
//     was created (or resent), then FAILED. An endpoint whose deliveries
//     all failed for WebhookFailingLimit is disabled, its waiting
//     deliveries FAILED, and its partner's admins told
//     (webhook.endpoint_disabled); re-enabling it starts afresh.
//   - URLs are https, and must not resolve to private, loopback or
//     link-local addresses unless the operator's allow-list
//     (WEBHOOK_ALLOWED_NETWORKS) holds them; this is checked at
//     registration and again at every connection (webhook.Guard), so a
//     name that later resolves inside the network is refused too.
//   - The secret is shown once, at creation or rotation. A rotation may keep
//     the previous secret signing too, for up to MaxSecretOverlap, so
//     receivers can switch without losing a delivery.
//   - sendTestWebhook sends a webhook.test event to one endpoint, enabled or
//     not; test deliveries do not count for or against its health.
//   - Every change is audited; the secret never is.

// Webhook event types outside the notification catalogue.
const (
	// EventWebhookTest is a test event sent to one endpoint.
	EventWebhookTest = "webhook.test"
	// EventWebhookDisabled tells a partner's admins that one of its
	// endpoints was disabled after failing for WebhookFailingLimit.
	EventWebhookDisabled = "webhook.endpoint_disabled"
)

// Webhook limits.
const (
	// WebhookRetryWindow is how long a webhook delivery is retried.
	WebhookRetryWindow = 24 * time.Hour
	// WebhookFailingLimit is how long an endpoint may fail every delivery
	// before it is disabled.
	WebhookFailingLimit = 24 * time.Hour
	// MaxWebhookEndpoints bounds a partner's endpoints.
	MaxWebhookEndpoints = 20
	// MaxSecretOverlap bounds how long a rotated secret keeps signing.
	MaxSecretOverlap = 7 * 24 * time.Hour
	// maxDescription bounds an endpoint's description.
	maxDescription = 500
	// secretPrefix starts every signing secret.
	secretPrefix = "whsec_"
)

// TypeWebhookEndpoint is the type name inside the global IDs of endpoints.
const TypeWebhookEndpoint = "WebhookEndpoint"

// WebhookEndpoint is a partner's endpoint. Secret and PreviousSecret never
// leave the service except as the one-time answer of a creation or rotation.
type WebhookEndpoint struct {
	ID              int64
	AccountID       int64
	URL             string `gorm:"column:url"`
	Description     string
	EventTypes      store.Strings `gorm:"type:text[]"`
	Secret          string        `json:"-"`
	PreviousSecret  *string       `json:"-"`
	PreviousUntil   *time.Time
	Enabled         bool
	DisabledReason  *string
	FailingSince    *time.Time
	LastSuccessAt   *time.Time
	LastFailureAt   *time.Time
	CreatedBy       *int64
	CreatedAt       time.Time
	UpdatedAt       time.Time
	SecretRotatedAt *time.Time
}

// TableName is the webhook_endpoints table.
func (WebhookEndpoint) TableName() string { return "webhook_endpoints" }

// IsNode marks an endpoint as a GraphQL Node.
func (WebhookEndpoint) IsNode() {}

// SecretHint is the secret's last four characters, to tell secrets apart.
func (e *WebhookEndpoint) SecretHint() string {
	if len(e.Secret) < 4 {
		return ""
	}
	return "…" + e.Secret[len(e.Secret)-4:]
}

// signingSecrets are the secrets that sign a delivery at now: the current
// one, and the previous one while its overlap lasts.
func (e *WebhookEndpoint) signingSecrets(now time.Time) []string {
	out := []string{e.Secret}
	if e.PreviousSecret != nil && e.PreviousUntil != nil && now.Before(*e.PreviousUntil) {
		out = append(out, *e.PreviousSecret)
	}
	return out
}

// WebhookChange edits an endpoint; nil fields stay as they are.
type WebhookChange struct {
	URL         *string
	EventTypes  []string
	Description *string
}

// WebhookTestSent is the outcome of SendTestWebhook: the endpoint and the
// id of the test event, as its body and headers carry it.
type WebhookTestSent struct {
	Endpoint *WebhookEndpoint
	EventID  string
}

// WebhookTest is the webhook.test event: sent to EndpointID only.
type WebhookTest struct {
	EndpointID int64  `json:"endpointId"`
	PartnerID  int64  `json:"partnerId"`
	Message    string `json:"message"`
}

// EventType implements store.Event.
func (WebhookTest) EventType() string { return EventWebhookTest }

// EventAccountID implements store.AccountEvent.
func (e WebhookTest) EventAccountID() int64 { return e.PartnerID }

// WebhookEndpointDisabled tells a partner's admins that its endpoint
// EndpointID (at URL) failed every delivery since FailingSince and was
// disabled.
type WebhookEndpointDisabled struct {
	EndpointID   int64  `json:"endpointId"`
	PartnerID    int64  `json:"partnerId"`
	URL          string `json:"url"`
	FailingSince string `json:"failingSince"`
	LastError    string `json:"lastError"`
}

// EventType implements store.Event.
func (WebhookEndpointDisabled) EventType() string { return EventWebhookDisabled }

// EventAccountID implements store.AccountEvent.
func (e WebhookEndpointDisabled) EventAccountID() int64 { return e.PartnerID }

// registerWebhooks adds the webhook events people are told of to c.
func registerWebhooks(c *Catalogue) {
	Register(c, WebhookEndpointDisabled{EndpointID: 3, PartnerID: 7, URL: "https://erp.example.com/partnerd/events",
		FailingSince: "2026-11-27 09:30 UTC", LastError: "HTTP 503: Service Unavailable"}, Spec[WebhookEndpointDisabled]{
		Audience: func(e WebhookEndpointDisabled) []Audience { return []Audience{To(e.PartnerID)} },
		Defaults: InSiteAndEmail(),
	})
}

// WebhookEventTypes lists the event types an endpoint may subscribe to:
// every type of the notification catalogue.
func (s *Service) WebhookEventTypes() []string { return s.cat.Types() }

// CreateWebhookEndpoint registers an endpoint of partner partnerID at url
// for eventTypes, for an ADMIN whose scope holds the partner. It returns
// the endpoint and its signing secret, which is shown only here.
func (s *Service) CreateWebhookEndpoint(ctx context.Context, partnerID int64, url string, eventTypes []string, description string) (*WebhookEndpoint, string, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, "", err
	}
	// Scope first: a partner outside it is NOT_FOUND whatever the input.
	if _, err := accounts.GetInScope(s.st.DB.WithContext(ctx), sc, partnerID); err != nil {
		return nil, "", err
	}
	types, err := s.validEventTypes(eventTypes)
	if err != nil {
		return nil, "", err
	}
	if err := validDescription(description); err != nil {
		return nil, "", err
	}
	clean, err := s.checkURL(ctx, url)
	if err != nil {
		return nil, "", err
	}
	secret, err := newSecret()
	if err != nil {
		return nil, "", err
	}
	var out *WebhookEndpoint
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		partner, err := accounts.LockInScope(tx, sc, partnerID)
		if err != nil {
			return err
		}
		if err := sc.Require(accounts.PermManageUsers); err != nil {
			return err
		}
		if !partner.Kind.IsPartner() {
			return apperr.Invalid("partnerId", "webhook endpoints belong to a distributor or reseller, not to a %s", partner.Kind)
		}
		var n int64
		if err := tx.DB.Model(&WebhookEndpoint{}).Where("account_id = ?", partner.ID).Count(&n).Error; err != nil {
			return fmt.Errorf("count webhook endpoints: %w", err)
		}
		if n >= MaxWebhookEndpoints {
			return apperr.Preconditionf("a partner has at most %d webhook endpoints; disable or reuse one", MaxWebhookEndpoints)
		}
		now := tx.Now()
		e := &WebhookEndpoint{AccountID: partner.ID, URL: clean, Description: description, EventTypes: store.Strings(types),
			Secret: secret, Enabled: true, CreatedAt: now, UpdatedAt: now}
		if p := sc.Principal(); !p.System {
			e.CreatedBy = &p.UserID
		}
		if err := tx.DB.Create(e).Error; err != nil {
			return fmt.Errorf("create webhook endpoint: %w", err)
		}
		out = e
		return tx.Audit("webhook.create", partner.ID, nil, auditView(e))
	})
	if err != nil {
		return nil, "", err
	}
	return out, secret, nil
}

// UpdateWebhookEndpoint changes an endpoint's URL, event types or
// description, for an ADMIN whose scope holds its partner.
func (s *Service) UpdateWebhookEndpoint(ctx context.Context, id int64, ch WebhookChange) (*WebhookEndpoint, error) {
	if _, err := s.endpointInScope(ctx, s.st.DB.WithContext(ctx), id, accounts.PermManageUsers); err != nil {
		return nil, err
	}
	var types []string
	if ch.EventTypes != nil {
		var err error
		if types, err = s.validEventTypes(ch.EventTypes); err != nil {
			return nil, err
		}
	}
	if ch.Description != nil {
		if err := validDescription(*ch.Description); err != nil {
			return nil, err
		}
	}
	var url string
	if ch.URL != nil {
		var err error
		if url, err = s.checkURL(ctx, *ch.URL); err != nil {
			return nil, err
		}
	}
	return s.changeEndpoint(ctx, id, accounts.PermManageUsers, "webhook.update", func(tx *store.Tx, e *WebhookEndpoint) error {
		if ch.URL != nil {
			e.URL = url
		}
		if types != nil {
			e.EventTypes = store.Strings(types)
		}
		if ch.Description != nil {
			e.Description = *ch.Description
		}
		return nil
	})
}

// SetWebhookEndpointEnabled enables or disables an endpoint, for an ADMIN
// whose scope holds its partner. Disabling needs a reason; deliveries
// already waiting for a disabled endpoint are FAILED when their turn comes.
// Enabling clears its failure record, so it gets a fresh
// WebhookFailingLimit.
func (s *Service) SetWebhookEndpointEnabled(ctx context.Context, id int64, enabled bool, reason string) (*WebhookEndpoint, error) {
	reason = strings.TrimSpace(reason)
	if !enabled && reason == "" {
		return nil, apperr.Invalid("reason", "say why the endpoint is disabled")
	}
	if len(reason) > maxDescription {
		return nil, apperr.Invalid("reason", "the reason is at most %d bytes", maxDescription)
	}
	action := "webhook.enable"
	if !enabled {
		action = "webhook.disable"
	}
	return s.changeEndpoint(ctx, id, accounts.PermManageUsers, action, func(tx *store.Tx, e *WebhookEndpoint) error {
		if e.Enabled == enabled {
			return nil
		}
		e.Enabled = enabled
		if enabled {
			e.DisabledReason, e.FailingSince = nil, nil
		} else {
			r := "disabled by " + store.ActorFrom(tx.Context()).Label + ": " + reason
			e.DisabledReason = &r
		}
		return nil
	})
}

// RotateWebhookSecret gives an endpoint a new signing secret, for an ADMIN
// whose scope holds its partner, and returns it (shown only here). For
// overlap (0..MaxSecretOverlap) the previous secret keeps signing too: each
// delivery then carries both signatures.
func (s *Service) RotateWebhookSecret(ctx context.Context, id int64, overlap time.Duration) (*WebhookEndpoint, string, error) {
	if overlap < 0 || overlap > MaxSecretOverlap {
		return nil, "", apperr.Invalid("overlapHours", "the previous secret may keep signing for 0 to %d hours", int(MaxSecretOverlap/time.Hour))
	}
	secret, err := newSecret()
	if err != nil {
		return nil, "", err
	}
	e, err := s.changeEndpoint(ctx, id, accounts.PermManageUsers, "webhook.rotate_secret", func(tx *store.Tx, e *WebhookEndpoint) error {
		now := tx.Now()
		e.PreviousSecret, e.PreviousUntil = nil, nil
		if overlap > 0 {
			prev, until := e.Secret, now.Add(overlap)
			e.PreviousSecret, e.PreviousUntil = &prev, &until
		}
		e.Secret, e.SecretRotatedAt = secret, &now
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return e, secret, nil
}

// SendTestWebhook sends a webhook.test event to the endpoint id (enabled or
// not), for an ADMIN whose scope holds its partner. The delivery shows in
// the endpoint's log like any other.
func (s *Service) SendTestWebhook(ctx context.Context, id int64) (*WebhookTestSent, error) {
	var out *WebhookTestSent
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		e, err := s.endpointInScope(ctx, tx.DB, id, accounts.PermManageUsers)
		if err != nil {
			return err
		}
		ev := WebhookTest{EndpointID: e.ID, PartnerID: e.AccountID,
			Message: "This is a test event from partnerd: your endpoint received and verified it."}
		ids, err := tx.EmitIDs(ev)
		if err != nil {
			return err
		}
		out = &WebhookTestSent{Endpoint: e, EventID: WebhookEventID(ids[0])}
		return tx.Audit("webhook.test", e.AccountID, nil, map[string]any{"endpointId": e.ID, "eventId": out.EventID})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// WebhookEventID is the id webhook bodies and headers carry for the outbox
// event outboxID.
func WebhookEventID(outboxID int64) string { return "evt_" + strconv.FormatInt(outboxID, 10) }

// WebhookEndpoint returns an endpoint for a reader (ADMIN) whose scope holds
// its partner; any other is NOT_FOUND.
func (s *Service) WebhookEndpoint(ctx context.Context, id int64) (*WebhookEndpoint, error) {
	return s.endpointInScope(ctx, s.st.DB.WithContext(ctx), id, accounts.PermAudit)
}

// WebhookEndpoints lists the endpoints of partner partnerID, newest first,
// for an ADMIN whose scope holds the partner.
func (s *Service) WebhookEndpoints(ctx context.Context, partnerID int64, first int, afterID int64) (*store.Page[*WebhookEndpoint], error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	db := s.st.DB.WithContext(ctx)
	if _, err := accounts.GetInScope(db, sc, partnerID); err != nil {
		return nil, err
	}
	if err := sc.Require(accounts.PermAudit); err != nil {
		return nil, err
	}
	return store.PageOf[*WebhookEndpoint](db, "webhook_endpoints b", "b.account_id = ?", []any{partnerID},
		"-b.id", "b.id DESC", first, accounts.MaxPageSize, afterID)
}

// WebhookDeliveries is the delivery log of endpoint id, newest first, for
// an ADMIN whose scope holds its partner.
func (s *Service) WebhookDeliveries(ctx context.Context, id int64, status *models.DeliveryStatus, first int, after int64) (*DeliveryPage, error) {
	if _, err := s.endpointInScope(ctx, s.st.DB.WithContext(ctx), id, accounts.PermAudit); err != nil {
		return nil, err
	}
	q := s.st.DB.WithContext(ctx).Table("deliveries d").Where("d.endpoint_id = ?", id)
	return s.deliveryPage(ctx, q, DeliveryFilter{Status: status}, first, after)
}

// changeEndpoint locks the endpoint id (in scope, perm), applies change and
// saves it with an audit entry of action.
func (s *Service) changeEndpoint(ctx context.Context, id int64, perm accounts.Permission, action string, change func(*store.Tx, *WebhookEndpoint) error) (*WebhookEndpoint, error) {
	var out *WebhookEndpoint
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		e, err := s.endpointInScope(ctx, tx.DB.Clauses(clause.Locking{Strength: "UPDATE"}), id, perm)
		if err != nil {
			return err
		}
		before := auditView(e)
		if err := change(tx, e); err != nil {
			return err
		}
		e.UpdatedAt = tx.Now()
		if err := tx.DB.Save(e).Error; err != nil {
			return fmt.Errorf("save webhook endpoint %d: %w", id, err)
		}
		out = e
		return tx.Audit(action, e.AccountID, before, auditView(e))
	})
	return out, err
}

// endpointInScope loads endpoint id through db when the caller's scope
// holds its partner (NOT_FOUND otherwise, as for one that does not exist)
// and the caller may do perm.
func (s *Service) endpointInScope(ctx context.Context, db *gorm.DB, id int64, perm accounts.Permission) (*WebhookEndpoint, error) {
	return ownedInScope(ctx, db, id, perm, "webhook endpoint", func(e *WebhookEndpoint) int64 { return e.AccountID })
}

// validEventTypes checks a subscription: at least one type, each of the
// catalogue; duplicates are dropped.
func (s *Service) validEventTypes(list []string) ([]string, error) {
	if len(list) == 0 {
		return nil, apperr.Invalid("eventTypes", "subscribe to at least one event type; webhookEventTypes lists them")
	}
	var out []string
	for _, t := range list {
		if !s.cat.Has(t) {
			return nil, apperr.Invalid("eventTypes", "unknown event type %q: webhookEventTypes lists them", apperr.Clip(t))
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

func validDescription(d string) error {
	if len(d) > maxDescription {
		return apperr.Invalid("description", "the description is at most %d bytes", maxDescription)
	}
	return nil
}

// checkURL validates an endpoint URL against the guard (resolving its
// host), as a VALIDATION error.
func (s *Service) checkURL(ctx context.Context, raw string) (string, error) {
	u, err := s.guard.CheckURL(ctx, strings.TrimSpace(raw))
	if err != nil {
		var ue *webhook.URLError
		if errors.As(err, &ue) {
			return "", apperr.Invalid("url", "%s", ue.Reason)
		}
		return "", fmt.Errorf("check webhook URL: %w", err)
	}
	return u.String(), nil
}

// auditView is what the audit log keeps of an endpoint: never its secret.
func auditView(e *WebhookEndpoint) map[string]any {
	return map[string]any{"id": e.ID, "url": e.URL, "eventTypes": []string(e.EventTypes), "description": e.Description,
		"enabled": e.Enabled, "disabledReason": e.DisabledReason, "secretHint": e.SecretHint(), "previousUntil": e.PreviousUntil}
}

// newSecret returns a fresh signing secret.
func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	return secretPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}
