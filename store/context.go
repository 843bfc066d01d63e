package store

import "context"

// Actor is who a change is attributed to in the audit log.
type Actor struct {
	// UserID is the acting user; 0 for the system or the command line.
	UserID int64
	// AccountID is the acting user's account.
	AccountID int64
	// Label names the actor in the audit log ("user:12 ops@example.com", "system").
	Label string
}

type actorKey struct{}
type requestIDKey struct{}

// WithActor returns ctx carrying the actor of the changes made with it.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor in ctx, or the system actor.
func ActorFrom(ctx context.Context) Actor {
	if a, ok := ctx.Value(actorKey{}).(Actor); ok {
		return a
	}
	return Actor{Label: "system"}
}

// WithRequestID returns ctx carrying the request id that audit rows and
// outbox rows record.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id in ctx, or "".
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey{}).(string)
	return s
}
