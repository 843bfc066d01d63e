package workers

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"partnerd/store/storetest"
)

// BenchmarkQueueTask is the floor of every queue task: enqueue one task with
// its own task ID and retention, as the relay and the fan-out do, and run it
// through a worker server with the product's concurrency and a handler that
// does nothing. b.N tasks per run; the figure is the cost of the queue alone.
func BenchmarkQueueTask(b *testing.B) {
	redisURL, _ := storetest.RedisDB(b)
	opt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		b.Fatal(err)
	}
	client := asynq.NewClient(opt)
	defer client.Close()
	var done atomic.Int64
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench:noop", func(context.Context, *asynq.Task) error { done.Add(1); return nil })
	srv := NewServer(opt, ServerConfig{Concurrency: 10, ShutdownTimeout: time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := srv.Start(mux); err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	b.ResetTimer()
	start := time.Now()
	// Enqueued from 8 goroutines, as relays and fan-outs do.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if _, err := client.Enqueue(asynq.NewTask("bench:noop", []byte(`{"id":1}`)), asynq.TaskID(fmt.Sprintf("bench:%d:%d", b.N, i)),
					asynq.Queue(QueueNotifications), asynq.Retention(time.Hour)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for done.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tasks/s")
}
