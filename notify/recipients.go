package notify

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gorm.io/gorm"

	"partnerd/models"
	"partnerd/store"
)

// Recipient is one party told of an event: a user (UserID set) or, when an
// account has no user whose roles qualify, the account itself through its
// contact email and phone and its account-wide inbox.
type Recipient struct {
	AccountID int64
	UserID    int64
	Name      string
	Email     string
	Phone     string
	Locale    models.Locale
	// prefs are the user's choices for the event type, over the defaults.
	prefs map[models.Channel]bool
}

// key names the recipient in a delivery key: "u<user id>" or "a<account id>".
func (r Recipient) key() string {
	if r.UserID != 0 {
		return "u" + strconv.FormatInt(r.UserID, 10)
	}
	return "a" + strconv.FormatInt(r.AccountID, 10)
}

// address is where channel ch reaches r ("" when it cannot).
func (r Recipient) address(ch models.Channel) string {
	switch ch {
	case models.ChannelEmail:
		return r.Email
	case models.ChannelSMS:
		return r.Phone
	}
	return ""
}

// audienceRow is one account of an audience with one of its users (none:
// the user columns are NULL) and that user's stored choices for the event
// types of the batch ("credit.allocated|EMAIL=false,...").
type audienceRow struct {
	AccountID    int64
	AccountName  string
	AccountEmail *string
	AccountPhone *string
	UserID       *int64
	UserName     *string
	UserEmail    *string
	UserPhone    *string
	Locale       *models.Locale
	Roles        models.Roles
	Prefs        string
}

// audienceQuery loads the audience accounts, their users and the users'
// choices for the given event types in one statement.
const audienceQuery = `SELECT a.id AS account_id, a.name AS account_name, a.email AS account_email, a.phone AS account_phone,
	u.id AS user_id, u.name AS user_name, u.email AS user_email, u.phone AS user_phone, u.locale, u.roles,
	coalesce((SELECT string_agg(p.event_type || '|' || p.channel || '=' || p.enabled::text, ',') FROM notification_preferences p
		WHERE p.user_id = u.id AND p.event_type IN ?), '') AS prefs
FROM accounts a LEFT JOIN users u ON u.account_id = a.id
WHERE a.id IN ?
ORDER BY a.id, u.id`

// audiences holds what the recipients of a batch of events are resolved
// from: the audience accounts with their users and choices, each account's
// parent and the platform.
type audiences struct {
	rows     map[int64][]audienceRow
	parents  map[int64]int64
	platform int64
	names    map[int64]string
}

// loadAudiences loads, in at most two queries, everything the audiences of a
// batch of events (of eventTypes) need.
func loadAudiences(db *gorm.DB, eventTypes []string, auds []Audience) (*audiences, error) {
	set := &audiences{rows: map[int64][]audienceRow{}, parents: map[int64]int64{}, names: map[int64]string{}}
	var parentOf, direct []int64
	platform := false
	for _, a := range auds {
		switch {
		case a.Platform:
			platform = true
		case a.ParentOf != 0:
			parentOf = append(parentOf, a.ParentOf)
		case a.Account != 0:
			direct = append(direct, a.Account)
		}
	}
	if len(parentOf) > 0 || platform {
		var rows []struct {
			ID       int64
			ParentID *int64
			Kind     models.AccountKind
		}
		ids := append(parentOf, 0)
		if err := store.Select(db, &rows, `SELECT id, parent_id, kind FROM accounts WHERE id IN ? OR (? AND kind = 'PLATFORM')`, ids, platform); err != nil {
			return nil, fmt.Errorf("find parents and platform: %w", err)
		}
		for _, r := range rows {
			if r.ParentID != nil {
				set.parents[r.ID] = *r.ParentID
				direct = append(direct, *r.ParentID)
			}
			if r.Kind == models.KindPlatform {
				set.platform = r.ID
				direct = append(direct, r.ID)
			}
		}
	}
	if len(direct) == 0 {
		return set, nil
	}
	var rows []audienceRow
	if err := store.Select(db, &rows, audienceQuery, eventTypes, direct); err != nil {
		return nil, fmt.Errorf("load recipients: %w", err)
	}
	for _, r := range rows {
		set.rows[r.AccountID] = append(set.rows[r.AccountID], r)
		set.names[r.AccountID] = r.AccountName
	}
	return set, nil
}

// recipients turns the audiences of one event into recipients, each once (a
// user in two audiences is told once), in a stable order, with each user's
// choices for eventType.
func (set *audiences) recipients(eventType string, auds []Audience) []Recipient {
	var out []Recipient
	seen := map[string]bool{}
	add := func(r Recipient) {
		if !seen[r.key()] {
			seen[r.key()] = true
			out = append(out, r)
		}
	}
	for _, a := range auds {
		account, roles := a.Account, a.Roles
		switch {
		case a.Platform:
			account = set.platform
		case a.ParentOf != 0:
			account = set.parents[a.ParentOf]
		}
		rows := set.rows[account]
		if account == 0 || len(rows) == 0 {
			continue
		}
		if !a.Platform {
			roles = append(slices.Clone(roles), models.RoleAdmin)
		}
		found := false
		for _, r := range rows {
			if r.UserID == nil || !slices.ContainsFunc(roles, r.Roles.Has) {
				continue
			}
			found = true
			rc := Recipient{AccountID: r.AccountID, UserID: *r.UserID, Name: deref(r.UserName), Email: deref(r.UserEmail),
				Phone: deref(r.UserPhone), Locale: models.LocaleEnUS, prefs: parsePrefs(r.Prefs, eventType)}
			if r.Locale != nil {
				rc.Locale = *r.Locale
			}
			if rc.Name == "" {
				rc.Name = rc.Email
			}
			add(rc)
		}
		if !found {
			acct := rows[0]
			add(Recipient{AccountID: acct.AccountID, Name: acct.AccountName, Email: deref(acct.AccountEmail),
				Phone: deref(acct.AccountPhone), Locale: models.LocaleEnUS})
		}
	}
	return out
}

// parsePrefs reads the choices for eventType out of
// "credit.allocated|EMAIL=false,credit.allocated|SMS=true,...".
func parsePrefs(s, eventType string) map[models.Channel]bool {
	if s == "" {
		return nil
	}
	out := map[models.Channel]bool{}
	for _, item := range strings.Split(s, ",") {
		typ, kv, _ := strings.Cut(item, "|")
		if typ != eventType {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		out[models.Channel(k)] = v == "true"
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
