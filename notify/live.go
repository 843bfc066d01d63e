// Package notify turns events into what people are told, and carries live
// updates to GraphQL subscribers: the Hub fans messages out through Redis
// pub/sub, so an event published by any process reaches a subscriber
// connected to any api process.
package notify

import (
	"context"
	"log/slog"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Hub is the live fan-out of one process. It keeps one Redis pub/sub
// connection, subscribes each topic once however many local subscribers
// want it, and delivers each message to all of them.
type Hub struct {
	rdb    redis.UniversalClient
	prefix string
	log    *slog.Logger

	mu     sync.Mutex
	ps     *redis.PubSub
	subs   map[string]map[chan []byte]struct{}
	closed bool
}

// NewHub returns a hub on rdb. prefix namespaces the channels (Redis pub/sub
// ignores database numbers), e.g. per deployment or per test.
func NewHub(rdb redis.UniversalClient, prefix string, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.Default()
	}
	return &Hub{rdb: rdb, prefix: prefix + "live:", log: log, subs: map[string]map[chan []byte]struct{}{}}
}

// Publish sends msg to every subscriber of topic in every process.
func (h *Hub) Publish(ctx context.Context, topic string, msg []byte) error {
	return h.rdb.Publish(ctx, h.prefix+topic, msg).Err()
}

// LiveMessage is one message for PublishAll.
type LiveMessage struct {
	Topic string
	Data  []byte
}

// PublishAll sends the messages, in order, in one round trip to Redis.
func (h *Hub) PublishAll(ctx context.Context, msgs []LiveMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	_, err := h.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, m := range msgs {
			p.Publish(ctx, h.prefix+m.Topic, m.Data)
		}
		return nil
	})
	return err
}

// Subscribe returns a channel of the messages published on topic until ctx
// ends. A slow subscriber loses messages rather than stalling the others
// (the buffer holds 64); subscribers reload state on each message anyway.
func (h *Hub) Subscribe(ctx context.Context, topic string) (<-chan []byte, error) {
	ch := make(chan []byte, 64)
	h.mu.Lock()
	if h.ps == nil {
		h.ps = h.rdb.Subscribe(context.Background())
		go h.run(h.ps)
	}
	set, ok := h.subs[topic]
	if !ok {
		set = map[chan []byte]struct{}{}
		h.subs[topic] = set
	}
	set[ch] = struct{}{}
	ps := h.ps
	h.mu.Unlock()
	if !ok {
		if err := ps.Subscribe(ctx, h.prefix+topic); err != nil {
			h.remove(topic, ch)
			return nil, err
		}
	}
	go func() {
		<-ctx.Done()
		h.remove(topic, ch)
	}()
	return ch, nil
}

func (h *Hub) remove(topic string, ch chan []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.subs[topic]
	if _, ok := set[ch]; !ok {
		return
	}
	delete(set, ch)
	close(ch)
	if len(set) == 0 {
		delete(h.subs, topic)
		if h.ps != nil {
			_ = h.ps.Unsubscribe(context.Background(), h.prefix+topic)
		}
	}
}

func (h *Hub) run(ps *redis.PubSub) {
	for m := range ps.Channel() {
		topic := m.Channel[len(h.prefix):]
		h.mu.Lock()
		for ch := range h.subs[topic] {
			select {
			case ch <- []byte(m.Payload):
			default:
				h.log.Warn("live subscriber too slow, message dropped", "topic", topic)
			}
		}
		h.mu.Unlock()
	}
}

// Subscribers counts this process's subscribers of topic.
func (h *Hub) Subscribers(topic string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[topic])
}

// Close ends every subscription.
func (h *Hub) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	for topic, set := range h.subs {
		for ch := range set {
			close(ch)
		}
		delete(h.subs, topic)
	}
	if h.ps != nil {
		return h.ps.Close()
	}
	return nil
}
