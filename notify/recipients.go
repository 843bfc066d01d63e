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
// type ("EMAIL=false,SMS=true").
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
// choices for one event type in one statement.
const audienceQuery = `SELECT a.id AS account_id, a.name AS account_name, a.email AS account_email, a.phone AS account_phone,
	u.id AS user_id, u.name AS user_name, u.email AS user_email, u.phone AS user_phone, u.locale, u.roles,
	coalesce((SELECT string_agg(p.channel || '=' || p.enabled::text, ',') FROM notification_preferences p
		WHERE p.user_id = u.id AND p.event_type = ?), '') AS prefs
FROM accounts a LEFT JOIN users u ON u.account_id = a.id
WHERE a.id IN ?
ORDER BY a.id, u.id`

// resolveAudiences turns audiences into recipients, each once (a user in two
// audiences is told once), in a stable order, with each user's choices for
// eventType; it also returns the names of the accounts it loaded.
func resolveAudiences(db *gorm.DB, eventType string, auds []Audience) ([]Recipient, map[int64]string, error) {
	type target struct {
		account int64
		roles   []models.Role
	}
	// Parents and the platform first, in one query, when an audience needs them.
	var parentOf []int64
	platform := false
	for _, a := range auds {
		if a.ParentOf != 0 {
			parentOf = append(parentOf, a.ParentOf)
		}
		platform = platform || a.Platform
	}
	parents := map[int64]int64{}
	var platformID int64
	if len(parentOf) > 0 || platform {
		var rows []struct {
			ID       int64
			ParentID *int64
			Kind     models.AccountKind
		}
		if len(parentOf) == 0 {
			parentOf = []int64{0}
		}
		if err := db.Raw(`SELECT id, parent_id, kind FROM accounts WHERE id IN ? OR (? AND kind = 'PLATFORM')`, parentOf, platform).
			Scan(&rows).Error; err != nil {
			return nil, nil, fmt.Errorf("find parents and platform: %w", err)
		}
		for _, r := range rows {
			if r.ParentID != nil {
				parents[r.ID] = *r.ParentID
			}
			if r.Kind == models.KindPlatform {
				platformID = r.ID
			}
		}
	}
	var targets []target
	for _, a := range auds {
		t := target{account: a.Account, roles: a.Roles}
		switch {
		case a.Platform:
			t.account = platformID
		case a.ParentOf != 0:
			t.account = parents[a.ParentOf]
		}
		if t.account == 0 {
			continue
		}
		if !a.Platform {
			t.roles = append(slices.Clone(t.roles), models.RoleAdmin)
		}
		targets = append(targets, t)
	}
	if len(targets) == 0 {
		return nil, nil, nil
	}
	accountIDs := make([]int64, 0, len(targets))
	for _, t := range targets {
		accountIDs = append(accountIDs, t.account)
	}
	var rows []audienceRow
	if err := store.Select(db, &rows, audienceQuery, eventType, accountIDs); err != nil {
		return nil, nil, fmt.Errorf("load recipients: %w", err)
	}
	names := map[int64]string{}
	for _, r := range rows {
		names[r.AccountID] = r.AccountName
	}

	var out []Recipient
	seen := map[string]bool{}
	add := func(r Recipient) {
		if !seen[r.key()] {
			seen[r.key()] = true
			out = append(out, r)
		}
	}
	for _, t := range targets {
		found, exists := false, false
		var acct audienceRow
		for _, r := range rows {
			if r.AccountID != t.account {
				continue
			}
			exists, acct = true, r
			if r.UserID == nil || !slices.ContainsFunc(t.roles, r.Roles.Has) {
				continue
			}
			found = true
			rc := Recipient{AccountID: r.AccountID, UserID: *r.UserID, Name: deref(r.UserName), Email: deref(r.UserEmail),
				Phone: deref(r.UserPhone), Locale: models.LocaleEnUS, prefs: parsePrefs(r.Prefs)}
			if r.Locale != nil {
				rc.Locale = *r.Locale
			}
			if rc.Name == "" {
				rc.Name = rc.Email
			}
			add(rc)
		}
		if exists && !found {
			add(Recipient{AccountID: acct.AccountID, Name: acct.AccountName, Email: deref(acct.AccountEmail),
				Phone: deref(acct.AccountPhone), Locale: models.LocaleEnUS})
		}
	}
	return out, names, nil
}

// parsePrefs reads "EMAIL=false,SMS=true".
func parsePrefs(s string) map[models.Channel]bool {
	if s == "" {
		return nil
	}
	out := map[models.Channel]bool{}
	for _, kv := range strings.Split(s, ",") {
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
