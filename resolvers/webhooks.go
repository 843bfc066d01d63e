package resolvers

import (
	"context"
	"time"

	"partnerd/graph"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
)

func (r *mutationResolver) createWebhookEndpoint(ctx context.Context, partnerID, url string, eventTypes []string, description *string) (*graph.WebhookEndpointSecret, error) {
	key, err := ids.Decode(partnerID, TypeAccount)
	if err != nil {
		return nil, err
	}
	desc := ""
	if description != nil {
		desc = *description
	}
	e, secret, err := r.Notify.CreateWebhookEndpoint(ctx, key, url, eventTypes, desc)
	if err != nil {
		return nil, err
	}
	return &graph.WebhookEndpointSecret{Endpoint: e, Secret: secret}, nil
}

func (r *mutationResolver) updateWebhookEndpoint(ctx context.Context, id string, url *string, eventTypes []string, description *string) (*notify.WebhookEndpoint, error) {
	key, err := ids.Decode(id, notify.TypeWebhookEndpoint)
	if err != nil {
		return nil, err
	}
	return r.Notify.UpdateWebhookEndpoint(ctx, key, notify.WebhookChange{URL: url, EventTypes: eventTypes, Description: description})
}

func (r *mutationResolver) setWebhookEndpointEnabled(ctx context.Context, id string, enabled bool, reason string) (*notify.WebhookEndpoint, error) {
	key, err := ids.Decode(id, notify.TypeWebhookEndpoint)
	if err != nil {
		return nil, err
	}
	return r.Notify.SetWebhookEndpointEnabled(ctx, key, enabled, reason)
}

func (r *mutationResolver) rotateWebhookSecret(ctx context.Context, id string, overlapHours *int) (*graph.WebhookEndpointSecret, error) {
	key, err := ids.Decode(id, notify.TypeWebhookEndpoint)
	if err != nil {
		return nil, err
	}
	overlap := 24 * time.Hour
	if overlapHours != nil {
		overlap = time.Duration(*overlapHours) * time.Hour
	}
	e, secret, err := r.Notify.RotateWebhookSecret(ctx, key, overlap)
	if err != nil {
		return nil, err
	}
	return &graph.WebhookEndpointSecret{Endpoint: e, Secret: secret}, nil
}

func (r *mutationResolver) sendTestWebhook(ctx context.Context, endpointID string) (*notify.WebhookTestSent, error) {
	key, err := ids.Decode(endpointID, notify.TypeWebhookEndpoint)
	if err != nil {
		return nil, err
	}
	return r.Notify.SendTestWebhook(ctx, key)
}

func (r *queryResolver) webhookEndpoints(ctx context.Context, partnerID string, first *int, after *string) (*graph.WebhookEndpointConnection, error) {
	es, info, total, err := ownedPage(partnerID, TypeAccount, first, after,
		func(key int64, first int, afterID int64) (*store.Page[*notify.WebhookEndpoint], error) {
			return r.Notify.WebhookEndpoints(ctx, key, first, afterID)
		},
		func(n *notify.WebhookEndpoint) int64 { return n.ID },
		func(c string, n *notify.WebhookEndpoint) *graph.WebhookEndpointEdge {
			return &graph.WebhookEndpointEdge{Cursor: c, Node: n}
		})
	if err != nil {
		return nil, err
	}
	return &graph.WebhookEndpointConnection{Edges: es, PageInfo: info, TotalCount: total}, nil
}

func (r *webhookEndpointResolver) deliveries(ctx context.Context, obj *notify.WebhookEndpoint, status *models.DeliveryStatus, first *int, after *string) (*graph.DeliveryConnection, error) {
	before, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	page, err := r.Notify.WebhookDeliveries(ctx, obj.ID, status, pageSize(first, 50), before)
	if err != nil {
		return nil, err
	}
	return deliveryConnection(page), nil
}
