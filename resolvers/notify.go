package resolvers

import (
	"context"
	"fmt"
	"strconv"

	"partnerd/graph"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/notify"
)

// Global ID types of the notification objects.
const (
	TypeInboxMessage = "InboxMessage"
	TypeDelivery     = "Delivery"
)

func (r *queryResolver) inbox(ctx context.Context, unreadOnly *bool, first *int, after *string) (*graph.InboxMessageConnection, error) {
	before, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	page, err := r.Notify.Inbox(ctx, unreadOnly != nil && *unreadOnly, pageSize(first, 50), before)
	if err != nil {
		return nil, err
	}
	conn := &graph.InboxMessageConnection{TotalCount: int(page.Total)}
	conn.Edges, conn.PageInfo = edges(page.Messages, page.HasNext, func(m models.InboxMessage) int64 { return m.ID },
		func(c string, m models.InboxMessage) *graph.InboxMessageEdge {
			return &graph.InboxMessageEdge{Cursor: c, Node: &m}
		})
	return conn, nil
}

func (r *queryResolver) deliveries(ctx context.Context, accountID string, status *models.DeliveryStatus, channel *models.Channel, first *int, after *string) (*graph.DeliveryConnection, error) {
	key, err := ids.Decode(accountID, TypeAccount)
	if err != nil {
		return nil, err
	}
	before, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	page, err := r.Notify.Deliveries(ctx, key, notify.DeliveryFilter{Status: status, Channel: channel}, pageSize(first, 50), before)
	if err != nil {
		return nil, err
	}
	return deliveryConnection(page), nil
}

// deliveryConnection makes a page of deliveries a connection.
func deliveryConnection(page *notify.DeliveryPage) *graph.DeliveryConnection {
	conn := &graph.DeliveryConnection{TotalCount: int(page.Total)}
	conn.Edges, conn.PageInfo = edges(page.Deliveries, page.HasNext, func(d notify.DeliveryView) int64 { return d.ID },
		func(c string, d notify.DeliveryView) *graph.DeliveryEdge {
			return &graph.DeliveryEdge{Cursor: c, Node: &d}
		})
	return conn
}

func (r *mutationResolver) markRead(ctx context.Context, list []string) (int, error) {
	keys := make([]int64, 0, len(list))
	for _, id := range list {
		key, err := ids.Decode(id, TypeInboxMessage)
		if err != nil {
			return 0, err
		}
		keys = append(keys, key)
	}
	return r.Notify.MarkRead(ctx, keys)
}

func (r *mutationResolver) resendDelivery(ctx context.Context, id string) (*notify.DeliveryView, error) {
	key, err := ids.Decode(id, TypeDelivery)
	if err != nil {
		return nil, err
	}
	return r.Notify.Resend(ctx, key)
}

func (r *queryResolver) preferences(ctx context.Context) ([]*notify.Preference, error) {
	list, err := r.Notify.Preferences(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*notify.Preference, len(list))
	for i := range list {
		out[i] = &list[i]
	}
	return out, nil
}

// inboxMessageReceived streams each new message of the caller's inbox: the
// live fan-out carries its id, and it is read back through the caller's
// inbox (so only the caller's own messages are ever sent).
func (r *subscriptionResolver) inboxMessageReceived(ctx context.Context) (<-chan *models.InboxMessage, error) {
	topics, err := r.Notify.InboxTopics(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	ids := make(chan []byte, 16)
	for _, t := range topics {
		msgs, err := r.Live.Subscribe(ctx, t)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("subscribe: %w", err)
		}
		go func() {
			for m := range msgs {
				select {
				case ids <- m:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	out := make(chan *models.InboxMessage, 1)
	go func() {
		defer close(out)
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case raw := <-ids:
				id, err := strconv.ParseInt(string(raw), 10, 64)
				if err != nil {
					continue
				}
				m, err := r.Notify.InboxMessage(ctx, id)
				if err != nil {
					continue
				}
				select {
				case out <- m:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}
