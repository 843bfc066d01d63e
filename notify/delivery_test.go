package notify_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"partnerd/models"
	"partnerd/notify"
	"partnerd/notify/email"
	"partnerd/notify/email/emailtest"
	"partnerd/testkit"
	"partnerd/workers"

	"github.com/hibiken/asynq"
)

// An event with three recipients: every channel each one's preferences and
// contact details allow, rendered in each one's locale, exactly once.
func TestFanOut_ThreeRecipientsAllChannels(t *testing.T) {
	tr := testkit.NewTree(t)
	w := testkit.StartWorkers(t, tr, testkit.WorkerOptions{})
	x := customer(t, tr, tr.D1.Account.ID, "Nimbus Games", nil, nil)
	admin := user(t, tr, x.ID, "+8613800138001", "en-US", models.RoleAdmin)
	fin := user(t, tr, x.ID, "+8613800138002", "zh-CN", models.RoleFinance)
	user(t, tr, x.ID, "+8613800138003", "en-US", models.RoleViewer) // not told: no qualifying role

	emit(t, tr.Store, notify.ArrearsChanged{CustomerID: x.ID, Entered: true, Available: "-1280.5", Month: "2026-11"})
	list := w.WaitDeliveries(t, tr, notify.EventArrearsEntered, 8, wait)

	// Recipients: X's admin and finance user (all channels, both have phones),
	// D1's admin (the parent's, no phone: in-site and email).
	if n := len(list); n != 8 {
		t.Fatalf("%d deliveries, want 8: %+v", n, list)
	}
	if count(list, models.ChannelInSite) != 3 || count(list, models.ChannelEmail) != 3 || count(list, models.ChannelSMS) != 2 {
		t.Fatalf("per channel: in-site %d email %d sms %d", count(list, models.ChannelInSite), count(list, models.ChannelEmail), count(list, models.ChannelSMS))
	}
	for _, d := range list {
		if d.Status != models.DeliverySent || d.Attempts != 1 {
			t.Errorf("delivery %s: %s after %d attempts (%v)", d.Key, d.Status, d.Attempts, d.LastError)
		}
	}

	// Emails: one per recipient, subject and both bodies in the locale.
	mails := w.SMTP.WaitFor(t, 3, wait)
	if len(mails) != 3 {
		t.Fatalf("%d emails", len(mails))
	}
	want := map[string]string{admin.User.Email: "en-US", fin.User.Email: "zh-CN", tr.D1.User.Email: "en-US"}
	for _, m := range mails {
		loc, ok := want[m.To[0]]
		if !ok || len(m.To) != 1 {
			t.Fatalf("email to %v", m.To)
		}
		delete(want, m.To[0])
		if isChinese(m.Subject) != (loc == "zh-CN") || !strings.Contains(m.Subject, "Nimbus Games") {
			t.Errorf("subject %q for %s", m.Subject, loc)
		}
		if !strings.Contains(m.TextBody, "-1,280.50") || !strings.Contains(m.HTMLBody, "<strong>-1,280.50</strong>") {
			t.Errorf("bodies lack the amount:\n%s\n%s", m.TextBody, m.HTMLBody)
		}
		if got := m.Header.Get("Content-Language"); got != loc {
			t.Errorf("Content-Language %q, want %s", got, loc)
		}
		var key string
		for _, d := range list {
			if d.Channel == models.ChannelEmail && d.Address == m.To[0] {
				key = d.Key
			}
		}
		if m.MessageID != email.MessageID(key, "notify@partnerd.test") {
			t.Errorf("Message-ID %q is not derived from the delivery key %q", m.MessageID, key)
		}
	}

	// SMS: one per phone, id = delivery key.
	posts := w.SMS.Posts()
	if len(posts) != 2 {
		t.Fatalf("%d SMS posts: %+v", len(posts), posts)
	}
	for _, p := range posts {
		if p.To != "+8613800138001" && p.To != "+8613800138002" {
			t.Errorf("SMS to %s", p.To)
		}
		if !strings.Contains(p.Text, "Nimbus Games") || !strings.HasSuffix(p.ID, ":SMS") {
			t.Errorf("SMS %+v", p)
		}
		if p.To == "+8613800138002" && !isChinese(p.Text) {
			t.Errorf("the zh-CN user's SMS is %q", p.Text)
		}
	}

	// In-site: one message in each recipient's inbox.
	for _, p := range []testkit.Party{admin, fin, tr.D1} {
		page, err := w.Notify.Inbox(p.Ctx, false, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		if page.Total != 1 || page.Messages[0].EventType != notify.EventArrearsEntered {
			t.Errorf("inbox of %s: %+v", p.User.Email, page)
		}
	}
}

// An account with no qualifying user is told through its contact email and
// phone and its account-wide inbox, which all its users see.
func TestFanOut_ContactFallback(t *testing.T) {
	tr := testkit.NewTree(t)
	w := testkit.StartWorkers(t, tr, testkit.WorkerOptions{})
	x := customer(t, tr, tr.D1.Account.ID, "Contact Only Ltd", ptr("billing@contact.example"), ptr("+8613900139000"))
	emit(t, tr.Store, notify.ArrearsChanged{CustomerID: x.ID, Entered: true, Available: "-5", Month: "2026-11"})
	list := w.WaitDeliveries(t, tr, notify.EventArrearsEntered, 5, wait) // contact ×3, D1 admin ×2
	var contact int
	for _, d := range list {
		if d.AccountID == x.ID {
			contact++
			if d.UserID != nil {
				t.Errorf("delivery %s names a user", d.Key)
			}
		}
	}
	if contact != 3 {
		t.Fatalf("%d contact deliveries", contact)
	}
	if m := w.SMTP.WaitFor(t, 2, wait); !containsTo(m, "billing@contact.example") {
		t.Fatal("no email to the contact address")
	}
	if len(w.SMS.Delivered()) != 1 {
		t.Fatalf("SMS: %+v", w.SMS.Posts())
	}
	// A viewer added later sees the account-wide message.
	viewer := user(t, tr, x.ID, "", "en-US", models.RoleViewer)
	n, err := w.Notify.UnreadCount(viewer.Ctx)
	if err != nil || n != 1 {
		t.Fatalf("viewer's unread count %d, %v", n, err)
	}
}

func containsTo(list []emailtest.Received, to string) bool {
	for _, m := range list {
		if len(m.To) == 1 && m.To[0] == to {
			return true
		}
	}
	return false
}

// A user who turned EMAIL off for an event type gets no email of it; the
// others still do.
func TestPreferences_EmailOffMeansNoEmail(t *testing.T) {
	tr := testkit.NewTree(t)
	w := testkit.StartWorkers(t, tr, testkit.WorkerOptions{})
	x := customer(t, tr, tr.D1.Account.ID, "Quiet Co", nil, nil)
	quiet := user(t, tr, x.ID, "+8613800138011", "en-US", models.RoleAdmin)
	loud := user(t, tr, x.ID, "+8613800138012", "en-US", models.RoleFinance)
	if _, err := w.Notify.SetPreference(quiet.Ctx, notify.EventArrearsEntered, models.ChannelEmail, false); err != nil {
		t.Fatal(err)
	}
	prefs, err := w.Notify.Preferences(quiet.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range prefs {
		if p.EventType == notify.EventArrearsEntered && p.Channel == models.ChannelEmail && (p.Enabled || p.Default) {
			t.Fatalf("preference not kept: %+v", p)
		}
		if p.EventType == notify.EventCreditAllocated && p.Channel == models.ChannelSMS && (p.Enabled || !p.Default) {
			t.Fatalf("credit.allocated SMS should be off by default: %+v", p)
		}
	}
	emit(t, tr.Store, notify.ArrearsChanged{CustomerID: x.ID, Entered: true, Available: "-5", Month: "2026-11"})
	list := w.WaitDeliveries(t, tr, notify.EventArrearsEntered, 7, wait) // quiet 2, loud 3, D1 admin 2
	for _, d := range list {
		if d.UserID != nil && *d.UserID == quiet.User.ID && d.Channel == models.ChannelEmail {
			t.Fatalf("quiet got an email: %+v", d)
		}
	}
	// Every delivery is final, so no other email is on its way.
	mails := w.SMTP.Messages()
	if got := len(mails); got != 2 {
		t.Fatalf("%d emails, want 2 (loud and D1's admin): %v", got, mails)
	}
	_ = loud

	if _, err := w.Notify.SetPreference(quiet.Ctx, "no.such.event", models.ChannelEmail, false); err == nil {
		t.Fatal("an unknown event type was accepted")
	}
}

// SMTP down for a while: the emails are retried and arrive once when it is
// back.
func TestDeliver_SMTPDownThenBack(t *testing.T) {
	tr := testkit.NewTree(t)
	w := testkit.StartWorkers(t, tr, testkit.WorkerOptions{})
	x := customer(t, tr, tr.D1.Account.ID, "Retry Co", nil, nil)
	user(t, tr, x.ID, "", "en-US", models.RoleAdmin)
	w.SMTP.Stop()
	emit(t, tr.Store, notify.ArrearsChanged{CustomerID: x.ID, Entered: true, Available: "-5", Month: "2026-11"})
	// Wait until both email deliveries failed at least twice each (one
	// task may retry a batch of them, so count per delivery).
	deadline := time.Now().Add(wait)
	for {
		var n int64
		tr.Store.DB.Raw(`SELECT count(*) FROM (SELECT delivery_id FROM delivery_attempts WHERE channel = 'EMAIL' AND outcome = 'RETRY'
			GROUP BY delivery_id HAVING count(*) >= 2) x`).Scan(&n)
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d email deliveries failed twice", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.SMTP.Start()
	list := w.WaitDeliveries(t, tr, notify.EventArrearsEntered, 4, wait)
	ids := map[string]bool{}
	for _, m := range w.SMTP.WaitFor(t, 2, wait) {
		if ids[m.MessageID] {
			t.Fatalf("email %s arrived twice", m.MessageID)
		}
		ids[m.MessageID] = true
	}
	if len(ids) != 2 {
		t.Fatalf("%d emails", len(ids))
	}
	for _, d := range list {
		if d.Status != models.DeliverySent {
			t.Fatalf("%s is %s", d.Key, d.Status)
		}
		if d.Channel == models.ChannelEmail && d.Attempts < 3 {
			t.Fatalf("%s sent after %d attempts", d.Key, d.Attempts)
		}
	}
}

// The SMS provider answers 500 twice then 200: one SMS, three attempts
// recorded. A 400 is a permanent failure: FAILED after one attempt.
func TestDeliver_SMSRetriesAndPermanentFailure(t *testing.T) {
	tr := testkit.NewTree(t)
	w := testkit.StartWorkers(t, tr, testkit.WorkerOptions{})
	x := customer(t, tr, tr.D1.Account.ID, "SMS Co", nil, nil)
	user(t, tr, x.ID, "+8613800138021", "en-US", models.RoleAdmin)

	w.SMS.Script(500, 500, 200)
	emit(t, tr.Store, notify.ArrearsChanged{CustomerID: x.ID, Entered: true, Available: "-5", Month: "2026-11"})
	list := w.WaitDeliveries(t, tr, notify.EventArrearsEntered, 5, wait)
	sms := find(t, list, models.ChannelSMS)
	if sms.Status != models.DeliverySent || sms.Attempts != 3 {
		t.Fatalf("SMS %s after %d attempts", sms.Status, sms.Attempts)
	}
	if got := len(w.SMS.Delivered()); got != 1 {
		t.Fatalf("%d SMS delivered", got)
	}
	view, err := w.Notify.Delivery(tr.Platform.Ctx, sms.ID)
	if err != nil {
		t.Fatal(err)
	}
	outcomes := []string{}
	for _, a := range view.AttemptLog {
		outcomes = append(outcomes, string(*a.Outcome))
		if a.FinishedAt == nil || a.Response == "" {
			t.Errorf("attempt %d not recorded: %+v", a.N, a)
		}
	}
	if strings.Join(outcomes, ",") != "RETRY,RETRY,SENT" || !strings.Contains(view.AttemptLog[0].Response, "500") {
		t.Fatalf("attempts %v, first %q", outcomes, view.AttemptLog[0].Response)
	}

	w.SMS.Script(400)
	emit(t, tr.Store, notify.ArrearsChanged{CustomerID: x.ID, Entered: false, Available: "5", Month: "2026-11"})
	list = w.WaitDeliveries(t, tr, notify.EventArrearsLeft, 5, wait)
	sms = find(t, list, models.ChannelSMS)
	if sms.Status != models.DeliveryFailed || sms.Attempts != 1 || sms.LastError == nil {
		t.Fatalf("SMS %s after %d attempts", sms.Status, sms.Attempts)
	}
	// No retry follows: the task completed.
	info, err := w.Inspect.GetTaskInfo("notifications", notify.TaskID(sms.Key, 1))
	if err != nil || info.State.String() != "completed" {
		t.Fatalf("task: %+v, %v", info, err)
	}
	if n := len(w.SMS.Posts()); n != 4 {
		t.Fatalf("%d SMS posts, want 4 (3 + 1)", n)
	}
}

func find(t *testing.T, list []models.Delivery, ch models.Channel) models.Delivery {
	t.Helper()
	for _, d := range list {
		if d.Channel == ch {
			return d
		}
	}
	t.Fatalf("no %s delivery", ch)
	return models.Delivery{}
}

// The sweep finds deliveries whose task was lost or can no longer run (here:
// never enqueued, and archived) and gives them a task again.
func TestSweep_ReenqueuesLostAndArchivedTasks(t *testing.T) {
	tr := testkit.NewTree(t)
	w := testkit.StartWorkers(t, tr, testkit.WorkerOptions{})
	x := customer(t, tr, tr.D1.Account.ID, "Lost Co", nil, nil)
	user(t, tr, x.ID, "", "en-US", models.RoleAdmin)
	payload, _ := json.Marshal(notify.CreditLimitSet{PartnerID: x.ID, Limit: "1.00", Previous: "0.00"})
	pending, err := w.Notify.FanOut(context.Background(), 777, notify.EventCreditLimitSet, payload)
	if err != nil || len(pending) != 2 {
		t.Fatalf("fan-out: %+v, %v", pending, err)
	}
	for _, p := range pending {
		if p.Channel != models.ChannelEmail {
			continue
		}
		if _, err := w.Queue.Enqueue(asynq.NewTask("test:never", nil), asynq.TaskID(p.TaskID),
			asynq.Queue(workers.QueueNotifications), asynq.ProcessIn(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := w.Inspect.ArchiveTask(workers.QueueNotifications, p.TaskID); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Store.DB.Exec(`UPDATE deliveries SET updated_at = now() - interval '10 minutes' WHERE outbox_id = 777`).Error; err != nil {
		t.Fatal(err)
	}
	if _, err := w.Queue.Enqueue(asynq.NewTask(workers.TypeSweepDeliveries, nil), asynq.Queue(workers.QueueNotifications)); err != nil {
		t.Fatal(err)
	}
	list := w.WaitDeliveries(t, tr, notify.EventCreditLimitSet, 2, wait)
	for _, d := range list {
		if d.OutboxID == 777 && d.Status != models.DeliverySent {
			t.Fatalf("%s is %s", d.Key, d.Status)
		}
	}
	if len(w.SMTP.Messages()) != 1 {
		t.Fatalf("%d emails", len(w.SMTP.Messages()))
	}
}
