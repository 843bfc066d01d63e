package notify_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"partnerd/models"
	"partnerd/notify"
)

// BenchmarkFanOutAndDeliverEmail is one event owing one email, fanned out
// and delivered to a local SMTP server, without the queue: the database and
// SMTP cost of one notification.
func BenchmarkFanOutAndDeliverEmail(b *testing.B) {
	e := newOnceEnvTB(b)
	payload, _ := json.Marshal(notify.CreditLimitSet{PartnerID: e.cust.ID, Limit: "1.00", Previous: "0.00"})
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		// As the relay does: the event's time comes with it.
		pending, err := e.svc.FanOutBatch(ctx, []notify.Event{{OutboxID: int64(1_000_000 + i), Type: notify.EventCreditLimitSet, Payload: payload, At: time.Now()}})
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range pending {
			if p.Channel == models.ChannelEmail {
				if err := e.svc.Deliver(ctx, p.DeliveryID, false); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

// BenchmarkFanOutAndDeliverWebhook is one event owing one webhook (and the
// in-site and email notifications of D1's admin, not sent), fanned out and
// delivered, signed, to a local receiver, without the queue.
func BenchmarkFanOutAndDeliverWebhook(b *testing.B) {
	e := newHookEnv(b)
	rcv := newReceiver(b)
	if _, _, err := e.svc.CreateWebhookEndpoint(e.tr.D1.Ctx, e.tr.D1.Account.ID, rcv.URL, []string{notify.EventCreditAllocated}, ""); err != nil {
		b.Fatal(err)
	}
	payload, _ := json.Marshal(notify.CreditAllocated{PartnerID: e.tr.D1.Account.ID, ChildID: e.tr.C3.Account.ID, Amount: "1.00", Limit: "1.00"})
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		// As the relay does: the event's time comes with it.
		pending, err := e.svc.FanOutBatch(ctx, []notify.Event{{OutboxID: int64(1_000_000 + i), Type: notify.EventCreditAllocated, Payload: payload, At: time.Now()}})
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range pending {
			if p.Channel == models.ChannelWebhook {
				if err := e.svc.Deliver(ctx, p.DeliveryID, false); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}
