package notify_test

import (
	"strings"
	"testing"

	"partnerd/models"
	"partnerd/notify"
	"partnerd/notify/sms"
)

// sampleNames resolves the ids of the catalogue's sample events the way the
// database would, with names as long as real partners use.
func sampleNames(id int64) (string, error) {
	return map[int64]string{7: "华东云联科技有限公司", 42: "Nimbus Games Ltd."}[id], nil
}

// Every event type renders in both locales, every part non-empty, without a
// missing key, and the SMS fits what providers send as at most two segments.
func TestRender_EveryEventTypeInBothLocales(t *testing.T) {
	cat := notify.NewCatalogue()
	r, err := notify.NewRenderer(cat)
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Types()) < 5 {
		t.Fatalf("catalogue has %d event types", len(cat.Types()))
	}
	for _, typ := range cat.Types() {
		for _, loc := range notify.Locales() {
			t.Run(typ+"/"+string(loc), func(t *testing.T) {
				m, err := r.Render(typ, loc, cat.Sample(typ), "Li Wei", sampleNames)
				if err != nil {
					t.Fatal(err)
				}
				for part, s := range map[string]string{"subject": m.Subject, "text": m.Text, "html": m.HTML, "sms": m.SMS} {
					if strings.TrimSpace(s) == "" || strings.Contains(s, "<no value>") {
						t.Errorf("%s part is %q", part, s)
					}
				}
				if strings.Contains(m.Subject, "\n") {
					t.Errorf("subject spans lines: %q", m.Subject)
				}
				if !strings.Contains(m.Text, "Li Wei") || !strings.Contains(m.HTML, "Li Wei") {
					t.Errorf("the recipient is not greeted: %q", m.Text)
				}
				if !strings.Contains(m.HTML, `lang="`+string(loc)+`"`) {
					t.Errorf("html is not marked %s", loc)
				}
				if n := sms.Segments(m.SMS); n > 2 {
					t.Errorf("SMS takes %d segments: %q", n, m.SMS)
				}
				zh := strings.ContainsFunc(m.Subject, func(r rune) bool {
					return r >= 0x4e00 && r <= 0x9fff && !strings.ContainsRune("华东云联科技有限公司", r)
				})
				if (loc == models.LocaleZhCN) != zh {
					t.Errorf("subject %q is not in %s", m.Subject, loc)
				}
			})
		}
	}
}

// A template that reads a field the event lacks fails instead of rendering a
// blank.
func TestRender_MissingKeyFails(t *testing.T) {
	r, err := notify.NewRenderer(notify.NewCatalogue())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Render(notify.EventCreditAllocated, models.LocaleEnUS, map[string]any{"amount": "1.00"}, "x", sampleNames); err == nil {
		t.Fatal("rendered an event without its fields")
	}
	if _, err := r.Render(notify.EventCreditAllocated, models.LocaleEnUS, notify.CreditAllocated{PartnerID: 7, ChildID: 42, Amount: "1234567.5", Limit: "2000000"}, "x", sampleNames); err != nil {
		t.Fatal(err)
	}
}

func TestRender_MoneyIsGrouped(t *testing.T) {
	r, err := notify.NewRenderer(notify.NewCatalogue())
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Render(notify.EventCreditAllocated, models.LocaleEnUS, notify.CreditAllocated{PartnerID: 7, ChildID: 42, Amount: "1234567.5", Limit: "-2000000"}, "x", sampleNames)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Subject, "1,234,567.50") || !strings.Contains(m.Text, "-2,000,000.00") {
		t.Fatalf("amounts not formatted: %q / %q", m.Subject, m.Text)
	}
}
