package notify_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"partnerd/notify"
	"partnerd/store/storetest"
)

func newHub(t *testing.T, url, prefix string) *notify.Hub {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	h := notify.NewHub(rdb, prefix, nil)
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func recv(t *testing.T, ch <-chan []byte) string {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("channel closed")
		}
		return string(m)
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
	return ""
}

// A message published through one hub reaches every subscriber of the topic
// on every hub sharing the Redis and prefix, and no one else.
func TestHub_FansOutAcrossProcesses(t *testing.T) {
	url, prefix := storetest.RedisDB(t)
	a, b := newHub(t, url, prefix), newHub(t, url, prefix)
	other := newHub(t, url, prefix+"other:")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b1, err := b.Subscribe(ctx, "account:1")
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := b.Subscribe(ctx, "account:1")
	bOther, _ := b.Subscribe(ctx, "account:2")
	isolated, _ := other.Subscribe(ctx, "account:1")

	if err := a.Publish(ctx, "account:1", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, b1); got != "hello" {
		t.Fatalf("b1 got %q", got)
	}
	if got := recv(t, b2); got != "hello" {
		t.Fatalf("b2 got %q", got)
	}
	_ = a.Publish(ctx, "account:2", []byte("two"))
	if got := recv(t, bOther); got != "two" {
		t.Fatalf("bOther got %q", got)
	}
	select {
	case m := <-isolated:
		t.Fatalf("a hub with another prefix received %q", m)
	default:
	}
}

// Ending a subscriber's context closes its channel and drops the topic when
// it was the last subscriber.
func TestHub_UnsubscribesOnContextEnd(t *testing.T) {
	url, prefix := storetest.RedisDB(t)
	h := newHub(t, url, prefix)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := h.Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if h.Subscribers("t") != 1 {
		t.Fatalf("subscribers = %d", h.Subscribers("t"))
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("got a message, want the channel closed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after the context ended")
	}
	if h.Subscribers("t") != 0 {
		t.Fatalf("subscribers = %d after cancel", h.Subscribers("t"))
	}
}
