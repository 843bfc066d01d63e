package notify

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/store"
)

// inboxOf restricts a query on inbox_messages to the caller's inbox: the
// messages addressed to them and their account's account-wide messages.
func inboxOf(db *gorm.DB, p *accounts.Principal) *gorm.DB {
	return db.Where("(user_id = ? OR (user_id IS NULL AND account_id = ?))", p.UserID, p.AccountID)
}

// InboxPage is one page of the caller's inbox, newest first.
type InboxPage struct {
	Messages []models.InboxMessage
	HasNext  bool
	Total    int64
}

// Inbox lists the caller's in-site messages, newest first, after the message
// with ID after (0 for the first page); unreadOnly keeps the unread ones.
func (s *Service) Inbox(ctx context.Context, unreadOnly bool, first int, after int64) (*InboxPage, error) {
	p, err := callerUser(ctx)
	if err != nil {
		return nil, err
	}
	if err := accounts.ValidatePage(first); err != nil {
		return nil, err
	}
	q := inboxOf(s.st.DB.WithContext(ctx).Model(&models.InboxMessage{}), p)
	if unreadOnly {
		q = q.Where("read_at IS NULL")
	}
	page := &InboxPage{}
	if err := q.Session(&gorm.Session{}).Count(&page.Total).Error; err != nil {
		return nil, fmt.Errorf("count inbox: %w", err)
	}
	if after > 0 {
		q = q.Where("id < ?", after)
	}
	if err := q.Order("id DESC").Limit(first + 1).Find(&page.Messages).Error; err != nil {
		return nil, fmt.Errorf("list inbox: %w", err)
	}
	if len(page.Messages) > first {
		page.Messages, page.HasNext = page.Messages[:first], true
	}
	return page, nil
}

// InboxMessage returns one message of the caller's inbox; any other is
// NOT_FOUND.
func (s *Service) InboxMessage(ctx context.Context, id int64) (*models.InboxMessage, error) {
	p, err := callerUser(ctx)
	if err != nil {
		return nil, err
	}
	var m models.InboxMessage
	if err := inboxOf(s.st.DB.WithContext(ctx), p).First(&m, id).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, apperr.NotFoundf("inbox message not found")
		}
		return nil, fmt.Errorf("load inbox message %d: %w", id, err)
	}
	return &m, nil
}

// UnreadCount is how many of the caller's inbox messages are unread.
func (s *Service) UnreadCount(ctx context.Context) (int, error) {
	p, err := callerUser(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := inboxOf(s.st.DB.WithContext(ctx).Model(&models.InboxMessage{}), p).Where("read_at IS NULL").Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count unread inbox messages: %w", err)
	}
	return int(n), nil
}

// MarkRead marks the given messages of the caller's inbox read and returns
// how many were unread. An id that is not in the caller's inbox fails the
// whole call with NOT_FOUND, changing nothing.
func (s *Service) MarkRead(ctx context.Context, ids []int64) (int, error) {
	p, err := callerUser(ctx)
	if err != nil {
		return 0, err
	}
	if len(ids) > 1000 {
		return 0, apperr.Invalid("ids", "at most 1000 messages per call, got %d", len(ids))
	}
	var n int
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		var found int64
		if err := inboxOf(tx.DB.Model(&models.InboxMessage{}), p).Where("id IN ?", ids).Count(&found).Error; err != nil {
			return fmt.Errorf("find inbox messages: %w", err)
		}
		if int(found) != len(uniq(ids)) {
			return apperr.NotFoundf("inbox message not found")
		}
		res := inboxOf(tx.DB.Model(&models.InboxMessage{}), p).Where("id IN ? AND read_at IS NULL", ids).Update("read_at", tx.Now())
		if res.Error != nil {
			return fmt.Errorf("mark inbox messages read: %w", res.Error)
		}
		n = int(res.RowsAffected)
		return nil
	})
	return n, err
}

// MarkAllRead marks every message of the caller's inbox read and returns how
// many were unread.
func (s *Service) MarkAllRead(ctx context.Context) (int, error) {
	p, err := callerUser(ctx)
	if err != nil {
		return 0, err
	}
	res := inboxOf(s.st.DB.WithContext(ctx).Model(&models.InboxMessage{}), p).Where("read_at IS NULL").Update("read_at", s.st.Now())
	if res.Error != nil {
		return 0, fmt.Errorf("mark inbox read: %w", res.Error)
	}
	return int(res.RowsAffected), nil
}

// InboxTopics are the live topics of the caller's new inbox messages.
func (s *Service) InboxTopics(ctx context.Context) ([]string, error) {
	p, err := callerUser(ctx)
	if err != nil {
		return nil, err
	}
	return []string{InboxUserTopic(p.UserID), InboxAccountTopic(p.AccountID)}, nil
}

func uniq(ids []int64) map[int64]bool {
	m := make(map[int64]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}
