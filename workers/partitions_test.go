package workers

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"partnerd/partitions"
)

// The partitions task, as the scheduler enqueues it, runs the partition
// keeper: an outbox month that waited in the default partition gets its
// partition, and a settled month past its retention is dropped.
func TestHandlePartitions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.st.SQL.ExecContext(ctx, `INSERT INTO outbox (event_type, payload, created_at, dispatched_at, settled_at)
		VALUES ('x', '{}', '2019-05-05T00:00:00Z', now(), now())`); err != nil {
		t.Fatal(err)
	}
	mux := asynq.NewServeMux()
	HandlePartitions(mux, partitions.New(e.st, partitions.Options{OutboxRetention: time.Hour}, e.log))
	task := PartitionEntries()[0].Task(time.Now())
	if err := mux.ProcessTask(ctx, task); err != nil {
		t.Fatalf("run %s: %v", task.Type(), err)
	}
	var rows, left int
	if err := e.st.SQL.QueryRowContext(ctx, `SELECT count(*) FROM outbox_default`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if err := e.st.SQL.QueryRowContext(ctx, `SELECT count(*) FROM pg_class WHERE relname = 'outbox_p201905'`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if rows != 0 || left != 0 {
		t.Fatalf("after the task: %d rows in outbox_default, outbox_p201905 exists: %v", rows, left == 1)
	}
}
