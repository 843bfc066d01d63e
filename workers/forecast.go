package workers

import (
	"context"
	"time"

	"github.com/hibiken/asynq"

	"partnerd/forecast"
)

// TypeForecastTick sends the "forecast to exceed budget" alerts
// (forecast.Service.Tick; safe to run twice or concurrently).
const TypeForecastTick = "forecast:tick"

// HandleForecast adds the forecast's tick handler to mux.
func HandleForecast(mux *asynq.ServeMux, svc *forecast.Service) {
	mux.HandleFunc(TypeForecastTick, func(ctx context.Context, _ *asynq.Task) error {
		_, err := svc.Tick(ctx)
		return err
	})
}

// ForecastEntries are the scheduler entries of spend forecasts: the tick,
// every hour, as a projection moves with the day's spend, not by the
// minute.
func ForecastEntries() []Entry {
	return []Entry{{
		Name:    "forecast-tick",
		Every:   time.Hour,
		Task:    func(time.Time) *asynq.Task { return asynq.NewTask(TypeForecastTick, nil) },
		Queue:   QueueDefault,
		Timeout: 10 * time.Minute,
	}}
}
