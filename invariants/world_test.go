package invariants_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/credit"
	"partnerd/guard"
	"partnerd/lifecycle"
	"partnerd/migration"
	"partnerd/spend"
	"partnerd/store"
	"partnerd/testkit"
)

// beijing is the billing time zone.
var beijing = testkit.Shanghai

// start is when the store's clock starts: 2 June 2026, noon in Beijing.
var start = time.Date(2026, 6, 2, 4, 0, 0, 0, time.UTC)

// tickClock is the store's clock in the test: every reading is one
// microsecond after the one before, so no two changes share an instant (a
// customer moved twice needs two parent-history instants) and every change
// of a round comes after the round's start; Advance moves it between rounds.
type tickClock struct {
	mu  sync.Mutex
	now time.Time
}

// Now implements store.Clock.
func (c *tickClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Microsecond)
	return c.now
}

// Advance moves the clock forward by d.
func (c *tickClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// world is the system under test: the store and the domain services, called
// directly as the resolvers and workers call them.
type world struct {
	st        *store.Store
	clock     *tickClock
	accounts  *accounts.Service
	credit    *credit.Service
	spend     *spend.Service
	guard     *guard.Service
	migration *migration.Service
	lifecycle *lifecycle.Service
}

func newWorld(st *store.Store, clk *tickClock, acc *accounts.Service) *world {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &world{st: st, clock: clk, accounts: acc,
		credit:    credit.New(st, beijing),
		spend:     spend.New(st, beijing).WithLogger(quiet),
		guard:     guard.New(st, guard.Options{Location: beijing, Log: quiet}),
		migration: migration.New(st, migration.Options{Location: beijing, Log: quiet, PublicURL: "http://partner.test"}),
		lifecycle: lifecycle.New(st, lifecycle.Options{Location: beijing, PublicURL: "http://partner.test"}),
	}
}

// ctx is the context of one call: the user of token, authenticated as a
// request would be (so a moved account's users see their new scope), or the
// system when token is empty, with request id rid.
func (w *world) ctx(token, rid string) (context.Context, error) {
	bg := context.Background()
	if token == "" {
		return store.WithRequestID(accounts.SystemContext(bg), rid), nil
	}
	p, err := w.accounts.Authenticate(bg, token)
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	return store.WithRequestID(accounts.WithPrincipal(bg, p), rid), nil
}

// verdict is what the model expects of an operation before its round runs.
type verdict int

const (
	// either: the answer depends on how the round interleaves.
	either verdict = iota
	// succeeds: whatever the interleaving, it must succeed.
	succeeds
	// refused: whatever the interleaving, the domain must refuse it.
	refused
)

func (v verdict) String() string {
	return [...]string{"either", "succeeds", "refused"}[v]
}

// call is one service call of an operation: its request id and its error.
type call struct {
	what, rid string
	err       error
}

// base is what every operation has: its name (round and index), its
// verdict and its calls.
type base struct {
	name, kind string
	want       verdict
	calls      []call
}

// info is the operation's base.
func (b *base) info() *base { return b }

// do makes one call as the user of token (the system when ""), with a
// request id of its own, and records its error.
func (b *base) do(w *world, token, what string, fn func(ctx context.Context) error) error {
	rid := fmt.Sprintf("%s.%d", b.name, len(b.calls))
	ctx, err := w.ctx(token, rid)
	if err == nil {
		err = fn(ctx)
	}
	b.calls = append(b.calls, call{what: what, rid: rid, err: err})
	return err
}

// outcome lists what each call answered.
func (b *base) outcome() string {
	parts := make([]string, 0, len(b.calls))
	for _, c := range b.calls {
		if c.err == nil {
			parts = append(parts, c.what+": ok")
		} else {
			parts = append(parts, c.what+": "+clip(c.err.Error()))
		}
	}
	return strings.Join(parts, "; ")
}

// judge compares err, the answer of the operation's decisive call, with
// the verdict; and no call may fail with anything but a domain refusal.
func (b *base) judge(v *violations, self fmt.Stringer, err error) {
	for _, c := range b.calls {
		if c.err != nil && apperr.CodeOf(c.err) == apperr.Internal {
			v.add("%s: %s failed with an unexpected error: %v", self, c.what, c.err)
		}
	}
	switch {
	case b.want == succeeds && err != nil:
		v.add("%s: the model says it must succeed, it was refused: %v", self, err)
	case b.want == refused && err == nil:
		v.add("%s: the model says it must be refused, it succeeded", self)
	}
}

// refusedCalls are the request ids of the calls that failed: they must have
// written nothing.
func (b *base) refusedCalls() []string {
	var out []string
	for _, c := range b.calls {
		if c.err != nil {
			out = append(out, c.rid)
		}
	}
	return out
}

// violations collects what contradicts the model or an invariant.
type violations struct {
	mu   sync.Mutex
	list []string
}

func (v *violations) add(format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.list = append(v.list, fmt.Sprintf(format, args...))
}

func (v *violations) addAll(list []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.list = append(v.list, list...)
}

func (v *violations) empty() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.list) == 0
}

func clip(s string) string {
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}
