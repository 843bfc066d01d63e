package workers

import (
	"context"
	"time"

	"github.com/hibiken/asynq"

	"partnerd/vouchers"
)

// TypeVouchersTick expires vouchers and voucher quotas at their time and
// sends the reminders before a voucher expires (vouchers.Service.Tick;
// safe to run twice or concurrently).
const TypeVouchersTick = "vouchers:tick"

// HandleVouchers adds the vouchers' tick handler to mux.
func HandleVouchers(mux *asynq.ServeMux, svc *vouchers.Service) {
	mux.HandleFunc(TypeVouchersTick, func(ctx context.Context, _ *asynq.Task) error {
		_, err := svc.Tick(ctx)
		return err
	})
}

// VouchersEntries are the scheduler entries of vouchers: the tick, every
// minute, so a voucher stops paying within a minute of its expiry.
func VouchersEntries() []Entry {
	return []Entry{{
		Name:    "vouchers-tick",
		Every:   time.Minute,
		Task:    func(time.Time) *asynq.Task { return asynq.NewTask(TypeVouchersTick, nil) },
		Queue:   QueueDefault,
		Timeout: 10 * time.Minute,
	}}
}
