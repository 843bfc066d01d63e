package email_test

import (
	"regexp"
	"strings"
	"testing"

	"partnerd/notify/email"
)

// msgIDRE is RFC 5322's msg-id with a dot-atom-text on both sides.
var msgIDRE = regexp.MustCompile("^<[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[a-z0-9-]+(\\.[a-z0-9-]+)*>$")

func TestMessageID_IsDeterministicAndSafe(t *testing.T) {
	from := "Partner Center <noreply@Partner.Example>"
	for key, want := range map[string]string{
		"evt-1:user-2:email":  "<evt-1=3Auser-2=3Aemail@partner.example>",
		"a.b":                 "<a.b@partner.example>",
		".a..b.":              "<=2Ea.=2Eb=2E@partner.example>",
		"a=b":                 "<a=3Db@partner.example>",
		"预算 1":                "<=E9=A2=84=E7=AE=97=201@partner.example>",
		"x<y>@z\r\nBcc: evil": "<x=3Cy=3E=40z=0D=0ABcc=3A=20evil@partner.example>",
		"":                    "<=@partner.example>",
	} {
		got := email.MessageID(key, from)
		if got != want {
			t.Errorf("MessageID(%q) = %q, want %q", key, got, want)
		}
		if got != email.MessageID(key, from) {
			t.Errorf("MessageID(%q) is not deterministic", key)
		}
		if !msgIDRE.MatchString(got) {
			t.Errorf("MessageID(%q) = %q is not a valid msg-id", key, got)
		}
	}
}

func TestMessageID_DistinctKeysGiveDistinctIDs(t *testing.T) {
	keys := []string{"a:b", "a=3Ab", "a.b", "a=2Eb", "a..b", "a.=2Eb", "ab", "a b", "a_b",
		strings.Repeat("k", 200), strings.Repeat("k", 199) + "j", strings.Repeat("预", 100), strings.Repeat("预", 99) + "算"}
	seen := map[string]string{}
	for _, k := range keys {
		id := email.MessageID(k, "noreply@partner.example")
		if other, dup := seen[id]; dup {
			t.Errorf("keys %q and %q share the ID %q", k, other, id)
		}
		seen[id] = k
		if !msgIDRE.MatchString(id) {
			t.Errorf("MessageID(%q) = %q is not a valid msg-id", k, id)
		}
		if len(id) > 200 {
			t.Errorf("MessageID(%q) is %d characters long", k, len(id))
		}
	}
}

func TestMessageID_DomainComesFromFrom(t *testing.T) {
	for from, want := range map[string]string{
		"noreply@mail.partner.example":             "@mail.partner.example>",
		"\"Partner 中心\" <noreply@PARTNER.example>": "@partner.example>",
		"":                        "@partnerd.local>",
		"not an address":          "@partnerd.local>",
		"noreply@[192.0.2.1]":     "@partnerd.local>",
		"noreply@bad_domain.test": "@partnerd.local>",
	} {
		if got := email.MessageID("k", from); !strings.HasSuffix(got, want) {
			t.Errorf("MessageID(k, %q) = %q, want domain %q", from, got, want)
		}
	}
}
