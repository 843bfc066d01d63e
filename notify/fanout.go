package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"gorm.io/gorm/clause"

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
	var pending []Pending
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		pending = nil
		recips, err := resolveAudiences(tx, auds)
		if err != nil {
			return err
		}
		var userIDs []int64
		for _, r := range recips {
			if r.UserID != 0 {
				userIDs = append(userIDs, r.UserID)
			}
		}
		prefs, err := s.channelsFor(tx, eventType, userIDs)
		if err != nil {
			return err
		}
		names := accountNames(tx)
		now := tx.Now()
		var rows []models.Delivery
		for _, r := range recips {
			var rendered *Message
			for _, ch := range models.AllChannels {
				on := s.cat.Default(eventType, ch)
				if r.UserID != 0 {
					on = prefs[r.UserID][ch]
				}
				if !on || (ch != models.ChannelInSite && r.address(ch) == "") {
					continue
				}
				if rendered == nil {
					m, err := s.render.Render(eventType, r.Locale, event, r.Name, names)
					if err != nil {
						return err
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
					Status:    models.DeliveryPending,
					CreatedAt: now,
					UpdatedAt: now,
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
		if len(rows) > 0 {
			if err := tx.DB.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "key"}}, DoNothing: true}).
				Omit("ID", "Generation", "Attempts", "ClaimedUntil", "LastError", "ProviderID", "SentAt").
				Create(&rows).Error; err != nil {
				return fmt.Errorf("create deliveries of outbox %d: %w", outboxID, err)
			}
		}
		var open []struct {
			ID         int64
			Key        string
			Generation int
		}
		if err := tx.DB.Raw(`SELECT id, key, generation FROM deliveries WHERE outbox_id = ? AND status = 'PENDING' ORDER BY id`,
			outboxID).Scan(&open).Error; err != nil {
			return fmt.Errorf("list pending deliveries of outbox %d: %w", outboxID, err)
		}
		for _, o := range open {
			pending = append(pending, Pending{DeliveryID: o.ID, TaskID: TaskID(o.Key, o.Generation)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return pending, nil
}

// accountNames resolves account names through tx, each account once.
func accountNames(tx *store.Tx) Names {
	cache := map[int64]string{}
	return func(id int64) (string, error) {
		if n, ok := cache[id]; ok {
			return n, nil
		}
		var name string
		if err := tx.DB.Raw(`SELECT name FROM accounts WHERE id = ?`, id).Scan(&name).Error; err != nil {
			return "", fmt.Errorf("name of account %d: %w", id, err)
		}
		if name == "" {
			name = "#" + strconv.FormatInt(id, 10)
		}
		cache[id] = name
		return name, nil
	}
}
