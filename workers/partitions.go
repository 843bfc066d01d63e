package workers

import (
	"context"
	"time"

	"github.com/hibiken/asynq"

	"partnerd/partitions"
)

// TypeMaintainPartitions creates the monthly partitions ahead, moves rows
// out of the default partitions and drops outbox and delivery months past
// their retention (partitions.Service.Maintain). It carries no payload;
// runs are serialized in the database, and running it twice is harmless.
const TypeMaintainPartitions = "maintenance:partitions"

// HandlePartitions adds the partition keeper's handler to mux.
func HandlePartitions(mux *asynq.ServeMux, svc *partitions.Service) {
	mux.HandleFunc(TypeMaintainPartitions, func(ctx context.Context, _ *asynq.Task) error {
		_, err := svc.Maintain(ctx)
		return err
	})
}

// PartitionEntries are the scheduler entries of the partition keeper:
// hourly, so a month's partitions exist long before the month starts and a
// month kept for a live row is looked at again soon.
func PartitionEntries() []Entry {
	return []Entry{{
		Name:    "partitions",
		Every:   time.Hour,
		Task:    func(time.Time) *asynq.Task { return asynq.NewTask(TypeMaintainPartitions, nil) },
		Queue:   QueueBulk,
		Timeout: 30 * time.Minute,
	}}
}
