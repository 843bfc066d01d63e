package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"partnerd/models"
	"partnerd/store"
)

// FanOut creates the deliveries the outbox event outboxID (of eventType,
// with its JSON payload) owes: one per recipient the catalogue names and
// channel the recipient's preferences enable, each rendered in the
// recipient's locale, under the unique key "<outbox id>:<recipient>:<channel>".
// It is idempotent: run again for the same event, it creates nothing twice.
// It returns the event's deliveries that still wait to be sent, for the
// caller to enqueue. Event types outside the catalogue owe nothing.
func (s *Service) FanOut(ctx context.Context, outboxID int64, eventType string, payload json.RawMessage) ([]Pending, error) {
	ent, ok := s.cat.entries[eventType]
	if !ok {
		return nil, nil
	}
	event, auds, err := ent.decode(payload)
	if err != nil {
		return nil, err
	}
	db := s.st.DB.WithContext(ctx)
	recips, names, err := resolveAudiences(db, eventType, auds)
	if err != nil {
		return nil, err
	}
	lookup := accountNames(db, names)
	now := s.st.Now()
	var rows []models.Delivery
	for _, r := range recips {
		var rendered *Message
		for _, ch := range models.AllChannels {
			on := s.cat.Default(eventType, ch)
			if r.UserID != 0 {
				if chosen, ok := r.prefs[ch]; ok {
					on = chosen
				}
			}
			if !on || (ch != models.ChannelInSite && r.address(ch) == "") {
				continue
			}
			if rendered == nil {
				m, err := s.render.Render(eventType, r.Locale, event, r.Name, lookup)
				if err != nil {
					return nil, err
				}
				rendered = &m
			}
			d := models.Delivery{
				Key:       strconv.FormatInt(outboxID, 10) + ":" + r.key() + ":" + string(ch),
				OutboxID:  outboxID,
				EventType: eventType,
				Channel:   ch,
				AccountID: r.AccountID,
				Address:   r.address(ch),
				Locale:    r.Locale,
				Subject:   rendered.Subject,
				BodyText:  rendered.Text,
			}
			switch ch {
			case models.ChannelEmail:
				d.BodyHTML = rendered.HTML
			case models.ChannelSMS:
				d.BodyText = rendered.SMS
			}
			if r.UserID != 0 {
				uid := r.UserID
				d.UserID = &uid
			}
			rows = append(rows, d)
		}
	}
	pending, err := insertDeliveries(db, outboxID, rows, now)
	if err != nil {
		return nil, fmt.Errorf("create deliveries of outbox %d: %w", outboxID, err)
	}
	return pending, nil
}

// insertDeliveries creates rows (those whose key exists are skipped) and
// returns every delivery of the outbox event still PENDING, in one
// statement: the fan-out needs no transaction of its own.
func insertDeliveries(db *gorm.DB, outboxID int64, rows []models.Delivery, now time.Time) ([]Pending, error) {
	var (
		sb   strings.Builder
		args []any
	)
	sb.WriteString(`WITH ins AS (`)
	if len(rows) > 0 {
		sb.WriteString(`INSERT INTO deliveries (key, outbox_id, event_type, channel, account_id, user_id, address, locale,
			subject, body_text, body_html, status, created_at, updated_at) VALUES `)
		for i, d := range rows {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'PENDING', ?, ?)")
			args = append(args, d.Key, d.OutboxID, d.EventType, d.Channel, d.AccountID, d.UserID, d.Address, d.Locale,
				d.Subject, d.BodyText, d.BodyHTML, now, now)
		}
		sb.WriteString(` ON CONFLICT (key) DO NOTHING RETURNING id, key, generation, channel`)
	} else {
		sb.WriteString(`SELECT id, key, generation, channel FROM deliveries WHERE false`)
	}
	// The second half reads the snapshot before the insert: the rows created
	// earlier for this event that still wait.
	sb.WriteString(`) SELECT id, key, generation, channel FROM ins
		UNION ALL SELECT id, key, generation, channel FROM deliveries WHERE outbox_id = ? AND status = 'PENDING'
		ORDER BY id`)
	args = append(args, outboxID)
	var open []struct {
		ID         int64
		Key        string
		Generation int
		Channel    models.Channel
	}
	if err := store.Select(db, &open, sb.String(), args...); err != nil {
		return nil, err
	}
	pending := make([]Pending, len(open))
	for i, o := range open {
		pending[i] = Pending{DeliveryID: o.ID, Channel: o.Channel, TaskID: TaskID(o.Key, o.Generation)}
	}
	return pending, nil
}

// accountNames resolves account names, those of known first and the others
// through db, each once.
func accountNames(db *gorm.DB, known map[int64]string) Names {
	cache := known
	return func(id int64) (string, error) {
		if n, ok := cache[id]; ok {
			return n, nil
		}
		var name string
		if err := db.Raw(`SELECT name FROM accounts WHERE id = ?`, id).Scan(&name).Error; err != nil {
			return "", fmt.Errorf("name of account %d: %w", id, err)
		}
		if name == "" {
			name = "#" + strconv.FormatInt(id, 10)
		}
		cache[id] = name
		return name, nil
	}
}

// NotifyNow fans out every outbox event of the catalogue that has no
// deliveries yet and writes their in-site messages at once, leaving email
// and SMS to the workers (which find the in-site ones done). The demo data
// uses it so the inbox holds messages before any worker has run.
func (s *Service) NotifyNow(ctx context.Context) (int, error) {
	var rows []struct {
		ID        int64
		EventType string
		Payload   []byte
	}
	err := s.st.DB.WithContext(ctx).Raw(`SELECT o.id, o.event_type, o.payload FROM outbox o
		WHERE o.event_type IN ? AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.outbox_id = o.id)
		ORDER BY o.id`, s.cat.Types()).Scan(&rows).Error
	if err != nil {
		return 0, fmt.Errorf("list outbox events to notify: %w", err)
	}
	n := 0
	for _, r := range rows {
		pending, err := s.FanOut(ctx, r.ID, r.EventType, r.Payload)
		if err != nil {
			return n, err
		}
		for _, p := range pending {
			if p.Channel != models.ChannelInSite {
				continue
			}
			if err := s.Deliver(ctx, p.DeliveryID, false); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
