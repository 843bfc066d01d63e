package accounts

import "strconv"

// AccountChanged is emitted when an account's own fields change (created,
// contact details, tags, status). It is published live on the account's topic.
type AccountChanged struct {
	AccountID int64  `json:"accountId"`
	Change    string `json:"change"`
}

// EventType implements store.Event.
func (AccountChanged) EventType() string { return "account.changed" }

// EventAccountID implements store.AccountEvent.
func (e AccountChanged) EventAccountID() int64 { return e.AccountID }

// LiveTopics implements store.LiveEvent.
func (e AccountChanged) LiveTopics() []string { return []string{AccountTopic(e.AccountID)} }

// AccountTopic is the live topic of an account's changes.
func AccountTopic(id int64) string { return "account:" + strconv.FormatInt(id, 10) }
