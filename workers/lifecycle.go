package workers

import (
	"context"
	"time"

	"github.com/hibiken/asynq"

	"partnerd/lifecycle"
)

// TypeSweepUnbindings marks the unbindings left unanswered past their
// expiry LAPSED and tells both sides.
const TypeSweepUnbindings = "lifecycle:sweep-unbindings"

// HandleLifecycle adds the lifecycle's task handlers to mux.
func HandleLifecycle(mux *asynq.ServeMux, svc *lifecycle.Service) {
	mux.HandleFunc(TypeSweepUnbindings, func(ctx context.Context, _ *asynq.Task) error {
		_, err := svc.SweepUnbindings(ctx)
		return err
	})
}

// LifecycleEntries are the scheduler entries of the lifecycle: the lapse
// sweep of unbindings, every 5 minutes.
func LifecycleEntries() []Entry {
	return []Entry{{
		Name:  "unbinding-sweep",
		Every: 5 * time.Minute,
		Task:  func(time.Time) *asynq.Task { return asynq.NewTask(TypeSweepUnbindings, nil) },
		Queue: QueueDefault,
	}}
}
