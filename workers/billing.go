package workers

import (
	"context"
	"time"

	"github.com/hibiken/asynq"

	"partnerd/billing"
)

// TypeBillingTick runs the bill schedule: generate the previous month's
// partner bills from the run day on, issue them on the issue day
// (billing.Service.Tick; safe to run twice).
const TypeBillingTick = "billing:tick"

// HandleBilling adds the bill schedule's handler to mux.
func HandleBilling(mux *asynq.ServeMux, svc *billing.Service, sched billing.Schedule) {
	mux.HandleFunc(TypeBillingTick, func(ctx context.Context, _ *asynq.Task) error {
		_, err := svc.Tick(ctx, sched)
		return err
	})
}

// BillingEntries are the scheduler entries of billing: the bill schedule's
// tick, on every hour (runs and issues happen on the hour, in Beijing time;
// a failed run is retried by the next hour's tick until it completes). A
// bill run over a large month takes minutes, hence the long timeout.
func BillingEntries() []Entry {
	return []Entry{{
		Name:    "billing-tick",
		Every:   time.Hour,
		Task:    func(time.Time) *asynq.Task { return asynq.NewTask(TypeBillingTick, nil) },
		Queue:   QueueBulk,
		Timeout: time.Hour,
	}}
}
