package notify

import (
	"fmt"
	"slices"
	"strconv"

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

// resolveAudiences turns audiences into recipients, each once (a user in two
// audiences is told once), in a stable order.
func resolveAudiences(tx *store.Tx, auds []Audience) ([]Recipient, error) {
	type target struct {
		account  int64
		platform bool
		roles    []models.Role
	}
	var targets []target
	for _, a := range auds {
		t := target{account: a.Account, platform: a.Platform, roles: a.Roles}
		switch {
		case a.Platform:
			var id int64
			if err := tx.DB.Raw(`SELECT id FROM accounts WHERE kind = 'PLATFORM'`).Scan(&id).Error; err != nil {
				return nil, fmt.Errorf("find the platform: %w", err)
			}
			t.account = id
		case a.ParentOf != 0:
			var parent *int64
			if err := tx.DB.Raw(`SELECT parent_id FROM accounts WHERE id = ?`, a.ParentOf).Scan(&parent).Error; err != nil {
				return nil, fmt.Errorf("find the parent of %d: %w", a.ParentOf, err)
			}
			if parent == nil {
				continue
			}
			t.account = *parent
		}
		if t.account == 0 {
			continue
		}
		if !t.platform {
			t.roles = append(slices.Clone(t.roles), models.RoleAdmin)
		}
		targets = append(targets, t)
	}
	if len(targets) == 0 {
		return nil, nil
	}
	accountIDs := make([]int64, 0, len(targets))
	for _, t := range targets {
		accountIDs = append(accountIDs, t.account)
	}
	var accts []models.Account
	if err := tx.DB.Where("id IN ?", accountIDs).Find(&accts).Error; err != nil {
		return nil, fmt.Errorf("load recipient accounts: %w", err)
	}
	byID := make(map[int64]models.Account, len(accts))
	for _, a := range accts {
		byID[a.ID] = a
	}
	var users []models.User
	if err := tx.DB.Where("account_id IN ?", accountIDs).Order("id").Find(&users).Error; err != nil {
		return nil, fmt.Errorf("load recipient users: %w", err)
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
		acct, ok := byID[t.account]
		if !ok {
			continue
		}
		found := false
		for _, u := range users {
			if u.AccountID != t.account || !slices.ContainsFunc(t.roles, u.Roles.Has) {
				continue
			}
			found = true
			r := Recipient{AccountID: u.AccountID, UserID: u.ID, Name: u.Name, Email: u.Email, Locale: u.Locale}
			if r.Name == "" {
				r.Name = u.Email
			}
			if u.Phone != nil {
				r.Phone = *u.Phone
			}
			add(r)
		}
		if !found {
			r := Recipient{AccountID: acct.ID, Name: acct.Name, Locale: models.LocaleEnUS}
			if acct.Email != nil {
				r.Email = *acct.Email
			}
			if acct.Phone != nil {
				r.Phone = *acct.Phone
			}
			add(r)
		}
	}
	return out, nil
}
