package workers

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/store"
)

// relayedTask emits ev, relays it and returns its task as a handler gets it.
func relayedTask(t *testing.T, e *env, ctx context.Context, ev testEvent) *asynq.Task {
	t.Helper()
	e.emit(ctx, ev)
	r := NewRelay(e.st, e.client, nil, e.log, RelayOptions{})
	if n, err := r.RelayOnce(ctx); err != nil || n != 1 {
		t.Fatalf("RelayOnce = %d, %v; want 1, nil", n, err)
	}
	ts := e.pending(QueueDefault)
	if len(ts) != 1 {
		t.Fatalf("pending tasks = %d, want 1", len(ts))
	}
	if err := e.insp.DeleteTask(QueueDefault, ts[0].ID); err != nil {
		t.Fatalf("delete task: %v", err)
	}
	return asynq.NewTask(ts[0].Type, ts[0].Payload)
}

func TestConsumersGetTheEventAsTheSystem(t *testing.T) {
	e := newEnv(t)
	ctx := store.WithRequestID(context.Background(), "req-42")
	task := relayedTask(t, e, ctx, testEvent{Kind: "account.updated", N: 5, Account: 3})

	type call struct {
		n         int
		ev        OutboxPayload
		principal *accounts.Principal
		requestID string
		actor     store.Actor
	}
	var calls []call
	reg := NewRegistry()
	for i := range 2 {
		reg.On("account.updated", func(ctx context.Context, ev OutboxPayload) error {
			p, _ := accounts.PrincipalFrom(ctx)
			calls = append(calls, call{n: i, ev: ev, principal: p, requestID: store.RequestID(ctx), actor: store.ActorFrom(ctx)})
			return nil
		})
	}
	reg.On("other.event", func(context.Context, OutboxPayload) error {
		t.Error("consumer of another event type called")
		return nil
	})
	mux := NewMux(reg, e.st, e.log)
	if err := mux.ProcessTask(context.Background(), task); err != nil {
		t.Fatalf("ProcessTask: %v", err)
	}
	if len(calls) != 2 || calls[0].n != 0 || calls[1].n != 1 {
		t.Fatalf("calls = %+v, want consumers 0 then 1", calls)
	}
	c := calls[0]
	if c.principal == nil || !c.principal.System || !c.principal.IsPlatform() {
		t.Fatalf("principal = %+v, want the system", c.principal)
	}
	if c.requestID != "req-42" || c.actor.Label != "system" {
		t.Fatalf("request id %q, actor %+v", c.requestID, c.actor)
	}
	ids := e.rowIDs(ctx)
	if c.ev.ID != ids[0] || c.ev.EventType != "account.updated" || c.ev.AccountID == nil || *c.ev.AccountID != 3 {
		t.Fatalf("event = %+v", c.ev)
	}
	var ev testEvent
	if err := json.Unmarshal(c.ev.Payload, &ev); err != nil || ev.N != 5 {
		t.Fatalf("event payload %s: %v", c.ev.Payload, err)
	}
}

func TestConsumerErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	task := relayedTask(t, e, ctx, testEvent{N: 1})

	for _, tc := range []struct {
		name      string
		err       error
		permanent bool
	}{
		{"validation", apperr.Invalid("name", "bad"), true},
		{"not found", apperr.NotFoundf("gone"), true},
		{"precondition", apperr.Preconditionf("not yet"), true},
		{"conflict", apperr.Conflictf("busy"), false},
		{"internal", errors.New("database down"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := NewRegistry()
			reg.On("test.event", func(context.Context, OutboxPayload) error { return tc.err })
			err := NewMux(reg, e.st, e.log).ProcessTask(ctx, task)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want it to wrap %v", err, tc.err)
			}
			if got := errors.Is(err, asynq.SkipRetry); got != tc.permanent {
				t.Fatalf("SkipRetry = %v, want %v (err %v)", got, tc.permanent, err)
			}
		})
	}

	t.Run("no consumer", func(t *testing.T) {
		if err := NewMux(NewRegistry(), e.st, e.log).ProcessTask(ctx, task); err != nil {
			t.Fatalf("ProcessTask = %v, want nil", err)
		}
	})
	t.Run("bad payload", func(t *testing.T) {
		err := NewMux(NewRegistry(), e.st, e.log).ProcessTask(ctx, asynq.NewTask(TypeOutboxEvent, []byte("{")))
		if !errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("ProcessTask = %v, want SkipRetry", err)
		}
	})
}

func TestNewServer(t *testing.T) {
	e := newEnv(t)
	srv := NewServer(e.redisOpt, ServerConfig{Concurrency: 2, ShutdownTimeout: time.Second}, e.log)
	reg := NewRegistry()
	got := make(chan OutboxPayload, 1)
	reg.On("test.event", func(_ context.Context, ev OutboxPayload) error {
		got <- ev
		return nil
	})
	if err := srv.Start(NewMux(reg, e.st, e.log)); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	ctx := context.Background()
	e.emit(ctx, testEvent{N: 1, Q: QueueNotifications})
	if _, err := NewRelay(e.st, e.client, nil, e.log, RelayOptions{}).RelayOnce(ctx); err != nil {
		t.Fatalf("RelayOnce: %v", err)
	}
	select {
	case ev := <-got:
		if ev.EventType != "test.event" {
			t.Fatalf("event = %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server never ran the task")
	}
}
