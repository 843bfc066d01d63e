// Package guard is the part of partnerd that stops money leaking (DOMAIN.md
// §4): customers' budgets and their threshold alerts, the overspend action,
// freezes (by the partner, on overspend, on arrears, and of new customers),
// resources and their release after a freeze with resources, and the purchase
// guard the cloud console asks before every purchase.
//
// Rules chosen where DOMAIN.md is silent (also in the README):
//   - Only CUSTOMER accounts are frozen and have budgets; every CUSTOMER is a
//     reseller-model customer, so it cannot be unfrozen without a budget.
//   - An arrears suspension freezes a customer (reason ARREARS) only when no
//     exemption covers either billing mode; with one exemption the account
//     stays ACTIVE and the purchase guard refuses the uncovered mode
//     (ARREARS_SUSPENDED). It is lifted automatically when arrears clear or
//     an exemption is granted. The purchase guard reads arrears live from its
//     row, so it is right even in the moments before the suspension is lifted.
//   - The overspend action is enforced on an ACTIVE customer whose budget is
//     exceeded. When its partner unfreezes it while the budget is still
//     exceeded, that is an explicit decision: the action is not enforced
//     again in the same period at the same amount.
//   - Unfreezing is refused while the customer is in arrears without an
//     exemption (the suspension would freeze it again at once).
//   - A freeze with resources stops the RUNNING resources; unfreezing starts
//     again the ones the freeze stopped. After the release (resources
//     RELEASED, data deleted) an unfreeze makes the account ACTIVE again but
//     brings nothing back.
package guard

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"partnerd/store"
)

// DefaultRetention is how long a FROZEN_WITH_RESOURCES account keeps its
// resources before they are released (FREEZE_RETENTION).
const DefaultRetention = 15 * 24 * time.Hour

// Reminders are how long before the release its reminders are sent.
var reminders = []struct {
	kind   string
	before time.Duration
	days   int
}{
	{"REMIND_3D", 72 * time.Hour, 3},
	{"REMIND_1D", 24 * time.Hour, 1},
}

// Options configure a Service.
type Options struct {
	// Location is the billing time zone (Asia/Shanghai).
	Location *time.Location
	// Retention is FREEZE_RETENTION (default DefaultRetention).
	Retention time.Duration
	// Log receives what the background enforcement did.
	Log *slog.Logger
}

// Service offers budgets, freezes, resources and purchase decisions.
type Service struct {
	st        *store.Store
	loc       *time.Location
	retention time.Duration
	log       *slog.Logger
	decisions *prometheus.CounterVec
	denials   *prometheus.CounterVec
}

// New returns the guard service on st.
func New(st *store.Store, o Options) *Service {
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Service{st: st, loc: o.Location, retention: o.Retention, log: o.Log.With("component", "guard"),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "partnerd_purchase_authorizations_total",
			Help: "Purchase authorizations answered, by decision (ALLOWED, DENIED).",
		}, []string{"decision"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "partnerd_purchase_denials_total",
			Help: "Purchases denied, by reason (ACCOUNT_FROZEN, ARREARS_SUSPENDED, BUDGET_EXCEEDED, INSUFFICIENT_CREDIT).",
		}, []string{"reason"})}
}

// RegisterMetrics adds the purchase decision counters to reg.
func (s *Service) RegisterMetrics(reg prometheus.Registerer) error {
	if err := reg.Register(s.decisions); err != nil {
		return err
	}
	return reg.Register(s.denials)
}

// Retention is FREEZE_RETENTION.
func (s *Service) Retention() time.Duration { return s.retention }

// Location is the billing time zone.
func (s *Service) Location() *time.Location { return s.loc }
