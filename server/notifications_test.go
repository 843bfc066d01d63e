package server_test

import (
	"testing"
	"time"

	"partnerd/ids"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/server"
	"partnerd/testkit"
)

// The notification APIs end to end: a credit allocation reaches the
// customer's admin live (inboxMessageReceived) and in the inbox; read marks,
// preferences, the delivery log for the partner's admins and resend of a
// FAILED delivery; another partner sees none of it.
func TestNotifications_EndToEnd(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	w := testkit.StartWorkers(t, tr, testkit.WorkerOptions{RedisURL: api.RedisURL, Prefix: api.Prefix})

	ws, err := dialWS(t, api, tr.C3.Token)
	if err != nil {
		t.Fatal(err)
	}
	ws.send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": `subscription { inboxMessageReceived { id eventType subject body read } }`}})
	topic := notify.InboxUserTopic(tr.C3.User.ID)
	deadline := time.Now().Add(5 * time.Second)
	for api.Hub.Subscribers(topic) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the subscription never registered")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The first email (to whichever recipient comes first) is refused for
	// good: that delivery is FAILED and can be resent.
	w.SMTP.RejectNext(550, "mailbox unavailable", 1)
	api.MustDo(t, tr.Platform.Token, `mutation($id: ID!) { setCreditLimit(accountId: $id, amount: "1000.00") { id } }`,
		map[string]any{"id": ids.Encode("Account", tr.D1.Account.ID)}, nil)
	api.MustDo(t, tr.D1.Token, `mutation($id: ID!) { allocateCredit(childId: $id, amount: "250.00") { id } }`,
		map[string]any{"id": ids.Encode("Account", tr.C3.Account.ID)}, nil)

	msg, err := ws.read(10 * time.Second)
	if err != nil || msg["type"] != "next" {
		t.Fatalf("no live message: %v %v", msg, err)
	}
	live := msg["payload"].(map[string]any)["data"].(map[string]any)["inboxMessageReceived"].(map[string]any)
	if live["eventType"] != notify.EventCreditAllocated || live["read"] != false {
		t.Fatalf("live message %v", live)
	}
	w.WaitDeliveries(t, tr, notify.EventCreditAllocated, 4, 20*time.Second) // C3 admin and D1 admin, in-site and email

	var inbox struct {
		Inbox struct {
			TotalCount int
			Edges      []struct {
				Node struct{ ID, Subject, Body string }
			}
		}
		UnreadCount int
	}
	api.MustDo(t, tr.C3.Token, `{ inbox(first: 10) { totalCount edges { node { id subject body } } } unreadCount }`, nil, &inbox)
	if inbox.Inbox.TotalCount != 1 || inbox.UnreadCount != 1 || inbox.Inbox.Edges[0].Node.ID != live["id"] {
		t.Fatalf("inbox %+v", inbox)
	}
	msgID := inbox.Inbox.Edges[0].Node.ID

	// Another partner cannot read or mark it.
	if r := api.Do(t, tr.D2.Token, `mutation($ids: [ID!]!) { markRead(ids: $ids) }`, map[string]any{"ids": []string{msgID}}); r.Code() != "NOT_FOUND" {
		t.Fatalf("D2 marked C3's message: %s %+v", r.Code(), r.Errors)
	}
	var other struct {
		Inbox       struct{ TotalCount int }
		UnreadCount int
	}
	api.MustDo(t, tr.D2.Token, `{ inbox { totalCount } unreadCount }`, nil, &other)
	if other.Inbox.TotalCount != 0 || other.UnreadCount != 0 {
		t.Fatalf("D2 sees %+v", other)
	}
	if r := api.Do(t, tr.D2.Token, `query($id: ID!) { deliveries(accountId: $id) { totalCount } }`,
		map[string]any{"id": ids.Encode("Account", tr.C3.Account.ID)}); r.Code() != "NOT_FOUND" {
		t.Fatalf("D2 read C3's deliveries: %s", r.Code())
	}

	var marked struct{ MarkRead, MarkAllRead int }
	api.MustDo(t, tr.C3.Token, `mutation($ids: [ID!]!) { markRead(ids: $ids) markAllRead }`, map[string]any{"ids": []string{msgID}}, &marked)
	if marked.MarkRead != 1 || marked.MarkAllRead != 0 {
		t.Fatalf("marked %+v", marked)
	}
	api.MustDo(t, tr.C3.Token, `{ inbox(unreadOnly: true) { totalCount edges { node { id } } } unreadCount }`, nil, &inbox)
	if inbox.Inbox.TotalCount != 0 || inbox.UnreadCount != 0 {
		t.Fatalf("after markRead: %+v", inbox)
	}
	var node struct{ Node struct{ Read bool } }
	api.MustDo(t, tr.C3.Token, `query($id: ID!) { node(id: $id) { ... on InboxMessage { read } } }`, map[string]any{"id": msgID}, &node)
	if !node.Node.Read {
		t.Fatal("node(id) does not show the message read")
	}

	// The partner's admin sees its subtree's deliveries, with attempts.
	type delivery struct {
		ID, Key, EventType, Status, Address, Locale, Subject string
		Channel                                              models.Channel
		Attempts                                             int
		AttemptLog                                           []struct {
			N        int
			Outcome  *string
			Response string
		}
		Account struct{ Name string }
		User    *struct{ Email string }
	}
	var log struct {
		Deliveries struct {
			TotalCount int
			Edges      []struct{ Node delivery }
		}
	}
	q := `query($id: ID!, $st: DeliveryStatus) { deliveries(accountId: $id, status: $st) { totalCount edges { node {
		id key eventType channel status address locale subject attempts attemptLog { n outcome response } account { name } user { email } } } } }`
	api.MustDo(t, tr.D1.Token, q, map[string]any{"id": ids.Encode("Account", tr.D1.Account.ID)}, &log)
	if log.Deliveries.TotalCount < 4 {
		t.Fatalf("D1 sees %d deliveries", log.Deliveries.TotalCount)
	}
	api.MustDo(t, tr.D1.Token, q, map[string]any{"id": ids.Encode("Account", tr.D1.Account.ID), "st": "FAILED"}, &log)
	if log.Deliveries.TotalCount != 1 {
		t.Fatalf("%d FAILED deliveries, want the refused email", log.Deliveries.TotalCount)
	}
	failed := log.Deliveries.Edges[0].Node
	if failed.Channel != models.ChannelEmail || len(failed.AttemptLog) != 1 || failed.AttemptLog[0].Outcome == nil ||
		*failed.AttemptLog[0].Outcome != "FAILED" || failed.User == nil {
		t.Fatalf("failed delivery %+v", failed)
	}

	// A customer's admin cannot resend its partner's deliveries; the
	// partner's admin resends the FAILED one and it goes out.
	// (Which email the server refused depends on the order of sending.)
	if failed.Account.Name != tr.C3.Account.Name {
		if r := api.Do(t, tr.C3.Token, `mutation($id: ID!) { resendDelivery(id: $id) { status } }`, map[string]any{"id": failed.ID}); r.Code() != "NOT_FOUND" {
			t.Fatalf("C3 resent a delivery outside its scope: %s", r.Code())
		}
	}
	var resent struct{ ResendDelivery struct{ Status string } }
	api.MustDo(t, tr.D1.Token, `mutation($id: ID!) { resendDelivery(id: $id) { status } }`, map[string]any{"id": failed.ID}, &resent)
	if resent.ResendDelivery.Status != "PENDING" {
		t.Fatalf("resent: %+v", resent)
	}
	var node2 struct {
		Node struct {
			Status   string
			Attempts int
		}
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		api.MustDo(t, tr.D1.Token, `query($id: ID!) { node(id: $id) { ... on Delivery { status attempts } } }`, map[string]any{"id": failed.ID}, &node2)
		if node2.Node.Status == "SENT" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the resent delivery never went out: %+v", node2)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if node2.Node.Attempts != 2 {
		t.Fatalf("resent delivery: %+v", node2)
	}
	if r := api.Do(t, tr.D1.Token, `mutation($id: ID!) { resendDelivery(id: $id) { status } }`, map[string]any{"id": failed.ID}); r.Code() != "PRECONDITION_FAILED" {
		t.Fatalf("resending a SENT delivery: %s", r.Code())
	}

	// Preferences.
	var prefs struct {
		NotificationPreferences []struct {
			EventType        string
			Channel          string
			Enabled, Default bool
		}
	}
	api.MustDo(t, tr.C3.Token, `mutation { setNotificationPreference(eventType: "credit.allocated", channel: SMS, enabled: true) { enabled default } }`, nil, nil)
	api.MustDo(t, tr.C3.Token, `{ notificationPreferences { eventType channel enabled default } }`, nil, &prefs)
	found := false
	for _, p := range prefs.NotificationPreferences {
		if p.EventType == "credit.allocated" && p.Channel == "SMS" {
			found = p.Enabled && !p.Default
		}
	}
	if !found || len(prefs.NotificationPreferences) != 3*len(notify.NewCatalogue().Types()) {
		t.Fatalf("preferences %+v", prefs)
	}
	if r := api.Do(t, tr.C3.Token, `mutation { setNotificationPreference(eventType: "nope", channel: SMS, enabled: true) { enabled } }`, nil); r.Code() != "VALIDATION" {
		t.Fatalf("unknown event type: %s", r.Code())
	}
}
