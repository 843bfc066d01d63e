package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"partnerd/accounts"
	"partnerd/models"
	"partnerd/store"
)

// Event is a committed outbox event to fan out.
type Event struct {
	OutboxID int64
	Type     string
	Payload  json.RawMessage
	// At is when the event was emitted (the outbox row's created_at). Its
	// deliveries are stored in that month's partition, where their unique
	// key is checked. Zero: FanOutBatch reads it from the outbox.
	At time.Time
}

// FanOut creates the deliveries the outbox event outboxID (of eventType,
// with its JSON payload) owes; see FanOutBatch.
func (s *Service) FanOut(ctx context.Context, outboxID int64, eventType string, payload json.RawMessage) ([]Pending, error) {
	return s.FanOutBatch(ctx, []Event{{OutboxID: outboxID, Type: eventType, Payload: payload}})
}

// FanOutBatch creates the deliveries the outbox events owe: one per
// recipient the catalogue names and channel the recipient's preferences
// enable, each rendered in the recipient's locale, under the unique key
// "<outbox id>:<recipient>:<channel>", and one WEBHOOK delivery per
// endpoint subscribed to the event (see webhooks.go). It is idempotent: run again for the
// same events, it creates nothing twice. It returns the events' deliveries
// that still wait to be sent, for the caller to enqueue. Event types outside
// the catalogue owe nothing. A batch costs the same few statements as one
// event: the recipients of all are loaded together and the deliveries
// inserted together.
func (s *Service) FanOutBatch(ctx context.Context, events []Event) ([]Pending, error) {
	var (
		list  []decoded
		hooks []hookEvent
		types []string
		all   []Audience
		ids   []int64
	)
	db := s.st.DB.WithContext(ctx)
	events, err := eventTimes(db, events, s.st.Now())
	if err != nil {
		return nil, err
	}
	for _, ev := range events {
		if ev.Type == EventWebhookTest {
			var t WebhookTest
			if err := json.Unmarshal(ev.Payload, &t); err != nil {
				return nil, fmt.Errorf("outbox %d: decode %s: %w", ev.OutboxID, ev.Type, err)
			}
			hooks = append(hooks, hookEvent{Event: ev, endpoint: t.EndpointID})
			ids = append(ids, ev.OutboxID)
			continue
		}
		ent, ok := s.cat.entries[ev.Type]
		if !ok {
			continue
		}
		value, auds, err := ent.decode(ev.Payload)
		if err != nil {
			return nil, fmt.Errorf("outbox %d: %w", ev.OutboxID, err)
		}
		list = append(list, decoded{Event: ev, value: value, auds: auds})
		hooks = append(hooks, hookEvent{Event: ev, accounts: subjects(auds)})
		if !slices.Contains(types, ev.Type) {
			types = append(types, ev.Type)
		}
		all = append(all, auds...)
		ids = append(ids, ev.OutboxID)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	set, err := loadAudiences(db, types, all)
	if err != nil {
		return nil, err
	}
	lookup := accountNames(db, set.names)
	paths, err := disclosurePaths(db, list, set)
	if err != nil {
		return nil, err
	}
	now := s.st.Now()
	var rows []models.Delivery
	for _, ev := range list {
		hidden := undisclosed(ev.value)
		for _, r := range set.recipients(ev.Type, ev.auds) {
			names := lookup
			if len(hidden) > 0 {
				names = paths.namesFor(r.AccountID, hidden, lookup)
			}
			var rendered *Message
			for _, ch := range models.AllChannels {
				on := s.cat.Default(ev.Type, ch)
				if r.UserID != 0 {
					if chosen, ok := r.prefs[ch]; ok {
						on = chosen
					}
				}
				if !on || (ch != models.ChannelInSite && r.address(ch) == "") {
					continue
				}
				if rendered == nil {
					m, err := s.render.Render(ev.Type, r.Locale, ev.value, r.Name, names)
					if err != nil {
						return nil, fmt.Errorf("outbox %d: %w", ev.OutboxID, err)
					}
					rendered = &m
				}
				d := models.Delivery{
					Key:       strconv.FormatInt(ev.OutboxID, 10) + ":" + r.key() + ":" + string(ch),
					OutboxID:  ev.OutboxID,
					EventAt:   ev.At,
					EventType: ev.Type,
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
	}
	hookRows, err := s.webhookRows(db, hooks, now)
	if err != nil {
		return nil, fmt.Errorf("fan out %d events (outbox %d first): %w", len(ids), ids[0], err)
	}
	rows = append(rows, hookRows...)
	var pending []Pending
	for i := 0; i < len(rows) || i == 0; i += insertChunk {
		chunk := rows[i:min(i+insertChunk, len(rows))]
		var chunkIDs []int64
		if i+insertChunk >= len(rows) {
			chunkIDs = ids // the last statement also lists what earlier runs left pending
		}
		p, err := insertDeliveries(db, chunkIDs, chunk, now)
		if err != nil {
			return nil, fmt.Errorf("create deliveries of %d events (outbox %d first): %w", len(ids), ids[0], err)
		}
		pending = append(pending, p...)
	}
	// The last statement also sees what the earlier chunks inserted.
	seen := make(map[int64]bool, len(pending))
	out := pending[:0]
	for _, p := range pending {
		if !seen[p.DeliveryID] {
			seen[p.DeliveryID] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// insertChunk bounds the rows of one INSERT (16 parameters each).
const insertChunk = 1000

// insertDeliveries creates rows (those whose key exists are skipped) and
// returns them with the deliveries of the outbox events outboxIDs that are
// still PENDING from earlier runs, in one statement: the fan-out needs no
// transaction of its own.
func insertDeliveries(db *gorm.DB, outboxIDs []int64, rows []models.Delivery, now time.Time) ([]Pending, error) {
	var (
		sb   strings.Builder
		args []any
	)
	sb.WriteString(`WITH ins AS (`)
	if len(rows) > 0 {
		sb.WriteString(`INSERT INTO deliveries (key, outbox_id, event_at, event_type, channel, account_id, user_id, address, locale,
			subject, body_text, body_html, endpoint_id, retry_until, status, created_at, updated_at) VALUES `)
		for i, d := range rows {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'PENDING', ?, ?)")
			args = append(args, d.Key, d.OutboxID, d.EventAt, d.EventType, d.Channel, d.AccountID, d.UserID, d.Address, d.Locale,
				d.Subject, d.BodyText, d.BodyHTML, d.EndpointID, d.RetryUntil, now, now)
		}
		// The key names the event, so (key, event_at) is as unique as the key.
		sb.WriteString(` ON CONFLICT (key, event_at) DO NOTHING RETURNING id, key, generation, channel`)
	} else {
		sb.WriteString(`SELECT id, key, generation, channel FROM deliveries WHERE false`)
	}
	// The second half reads the snapshot before the insert: the rows created
	// earlier for these events that still wait.
	sb.WriteString(`) SELECT id, key, generation, channel FROM ins`)
	if len(outboxIDs) > 0 {
		sb.WriteString(` UNION ALL SELECT id, key, generation, channel FROM deliveries WHERE outbox_id IN ? AND status = 'PENDING'`)
		args = append(args, outboxIDs)
	}
	sb.WriteString(` ORDER BY id`)
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

// decoded is an event of a fan-out batch with its payload decoded and its
// audiences.
type decoded struct {
	Event
	value any
	auds  []Audience
}

// Discloser is an event that names accounts not every recipient may know
// yet (a migration's source, before it approves): a recipient whose scope
// does not hold one of them reads its global ID where its name would be.
type Discloser interface {
	Undisclosed() []int64
}

func undisclosed(v any) []int64 {
	if d, ok := v.(Discloser); ok {
		return d.Undisclosed()
	}
	return nil
}

// accountPaths are the tree paths of the accounts a batch's disclosure
// checks need: the undisclosed accounts and the recipients.
type accountPaths map[int64]string

// disclosurePaths loads, in one query, the paths of every undisclosed
// account of list and of the recipients of those events.
func disclosurePaths(db *gorm.DB, list []decoded, set *audiences) (accountPaths, error) {
	var want []int64
	for _, ev := range list {
		hidden := undisclosed(ev.value)
		if len(hidden) == 0 {
			continue
		}
		want = append(want, hidden...)
		for _, r := range set.recipients(ev.Type, ev.auds) {
			want = append(want, r.AccountID)
		}
	}
	out := accountPaths{}
	if len(want) == 0 {
		return out, nil
	}
	var rows []struct {
		ID   int64
		Path string
	}
	if err := db.Raw(`SELECT id, path FROM accounts WHERE id = ANY(?::bigint[])`, store.Int64Array(want)).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("paths of undisclosed accounts: %w", err)
	}
	for _, r := range rows {
		out[r.ID] = r.Path
	}
	return out, nil
}

// namesFor is names as recipient account sees them: an account of hidden
// outside the recipient's subtree reads as its global ID.
func (p accountPaths) namesFor(recipient int64, hidden []int64, names Names) Names {
	return func(id int64) (string, error) {
		if slices.Contains(hidden, id) {
			own, ok := p[recipient]
			if !ok || !strings.HasPrefix(p[id], own) {
				return accounts.GlobalID(id), nil
			}
		}
		return names(id)
	}
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

// eventTimes returns events with every At set: those the caller left zero
// are read from their outbox rows in one statement. An event whose row is
// gone (a caller that fans out an event it made up) is placed at now.
func eventTimes(db *gorm.DB, events []Event, now time.Time) ([]Event, error) {
	var missing []int64
	for _, ev := range events {
		if ev.At.IsZero() {
			missing = append(missing, ev.OutboxID)
		}
	}
	if len(missing) == 0 {
		return events, nil
	}
	var times []struct {
		ID        int64
		CreatedAt time.Time
	}
	if err := store.Select(db, &times, `SELECT id, created_at FROM outbox WHERE id IN ?`, missing); err != nil {
		return nil, fmt.Errorf("read the times of %d events: %w", len(missing), err)
	}
	at := make(map[int64]time.Time, len(times))
	for _, t := range times {
		at[t.ID] = t.CreatedAt
	}
	out := slices.Clone(events)
	for i := range out {
		if out[i].At.IsZero() {
			if t, ok := at[out[i].OutboxID]; ok {
				out[i].At = t
			} else {
				out[i].At = now
			}
		}
	}
	return out, nil
}
