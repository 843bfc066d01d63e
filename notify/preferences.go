package notify

import (
	"context"
	"fmt"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/store"
)

// Preference is whether a user is told of an event type on a channel;
// Default is true when it is the catalogue's default, not the user's choice.
type Preference struct {
	EventType string
	Channel   models.Channel
	Enabled   bool
	Default   bool
}

// preferenceRow is a stored choice (notification_preferences).
type preferenceRow struct {
	UserID    int64
	EventType string
	Channel   models.Channel
	Enabled   bool
}

// callerUser returns the user calling; the system and anonymous callers have
// no preferences or inbox.
func callerUser(ctx context.Context) (*accounts.Principal, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	p := sc.Principal()
	if p.UserID == 0 {
		return nil, apperr.Forbiddenf("only a user has notification preferences and an inbox")
	}
	return p, nil
}

// Preferences lists the caller's choice for every event type of the
// catalogue on every channel, in catalogue order (DOMAIN.md §7).
func (s *Service) Preferences(ctx context.Context) ([]Preference, error) {
	p, err := callerUser(ctx)
	if err != nil {
		return nil, err
	}
	var rows []preferenceRow
	if err := s.st.DB.WithContext(ctx).Table("notification_preferences").Where("user_id = ?", p.UserID).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("load notification preferences: %w", err)
	}
	chosen := map[[2]string]bool{}
	for _, r := range rows {
		chosen[[2]string{r.EventType, string(r.Channel)}] = r.Enabled
	}
	var out []Preference
	for _, typ := range s.cat.Types() {
		for _, ch := range models.AllChannels {
			pref := Preference{EventType: typ, Channel: ch}
			if on, ok := chosen[[2]string{typ, string(ch)}]; ok {
				pref.Enabled = on
			} else {
				pref.Enabled, pref.Default = s.cat.Default(typ, ch), true
			}
			out = append(out, pref)
		}
	}
	return out, nil
}

// SetPreference records whether the caller is told of eventType on channel.
// The event type must be in the catalogue (VALIDATION otherwise). It applies
// to events fanned out from then on.
func (s *Service) SetPreference(ctx context.Context, eventType string, channel models.Channel, enabled bool) (Preference, error) {
	p, err := callerUser(ctx)
	if err != nil {
		return Preference{}, err
	}
	if !s.cat.Has(eventType) {
		return Preference{}, apperr.Invalid("eventType", "unknown event type %q: notificationPreferences lists them", apperr.Clip(eventType))
	}
	if !channel.IsValid() {
		return Preference{}, apperr.Invalid("channel", "unknown channel %q", apperr.Clip(string(channel)))
	}
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.DB.Exec(`INSERT INTO notification_preferences (user_id, event_type, channel, enabled, updated_at)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (user_id, event_type, channel) DO UPDATE SET enabled = EXCLUDED.enabled, updated_at = EXCLUDED.updated_at`,
			p.UserID, eventType, channel, enabled, tx.Now()).Error; err != nil {
			return fmt.Errorf("set notification preference: %w", err)
		}
		return tx.Audit("notify.preference", p.AccountID, nil,
			map[string]any{"userId": p.UserID, "eventType": eventType, "channel": channel, "enabled": enabled})
	})
	if err != nil {
		return Preference{}, err
	}
	return Preference{EventType: eventType, Channel: channel, Enabled: enabled}, nil
}
