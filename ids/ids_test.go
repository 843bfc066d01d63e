package ids_test

import (
	"encoding/base64"
	"math"
	"strings"
	"testing"

	"partnerd/apperr"
	"partnerd/ids"
)

func raw(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestEncodeDecode_RoundTrip(t *testing.T) {
	for _, c := range []struct {
		typ string
		key int64
	}{{"Account", 1}, {"User", 42}, {"ApiToken", math.MaxInt64}, {"AuditEntry", 1234567890}} {
		id := ids.Encode(c.typ, c.key)
		if strings.ContainsAny(id, "+/=") {
			t.Errorf("Encode(%s, %d) = %q: not URL-safe unpadded base64", c.typ, c.key, id)
		}
		k, err := ids.Decode(id, c.typ)
		if err != nil || k != c.key {
			t.Errorf("Decode(Encode(%s, %d)) = %d, %v", c.typ, c.key, k, err)
		}
		typ, k, err := ids.Parse(id)
		if err != nil || typ != c.typ || k != c.key {
			t.Errorf("Parse(Encode(%s, %d)) = %s, %d, %v", c.typ, c.key, typ, k, err)
		}
	}
	got, err := ids.DecodeAll([]string{ids.Encode("User", 3), ids.Encode("User", 5)}, "User")
	if err != nil || len(got) != 2 || got[0] != 3 || got[1] != 5 {
		t.Errorf("DecodeAll = %v, %v", got, err)
	}
}

func TestParse_RefusesMalformedIDs(t *testing.T) {
	for name, id := range map[string]string{
		"empty":              "",
		"not base64":         "!!!",
		"padded std base64":  "QWNjb3VudDo=", // "Account:" with padding
		"no key":             raw("Account:"),
		"no separator":       raw("Account1"),
		"no type":            raw(":1"),
		"zero key":           raw("Account:0"),
		"negative key":       raw("Account:-1"),
		"leading zero":       raw("Account:01"),
		"plus sign":          raw("Account:+1"),
		"space in key":       raw("Account: 1"),
		"overflow":           raw("Account:9223372036854775808"),
		"fractional key":     raw("Account:1.5"),
		"digit in type":      raw("Acc0unt:1"),
		"underscore in type": raw("Api_Token:1"),
		"bracket in type":    raw("A[b:1"),
		"non-ASCII type":     raw("Accöunt:1"),
		"two colons":         raw("Account:1:2"),
		"too long":           raw(strings.Repeat("A", 120) + ":1"),
	} {
		if typ, k, err := ids.Parse(id); err == nil {
			t.Errorf("%s: Parse(%q) = %s, %d, want an error", name, id, typ, k)
		} else if apperr.CodeOf(err) != apperr.Validation {
			t.Errorf("%s: Parse(%q): code %s, want VALIDATION", name, id, apperr.CodeOf(err))
		}
		if _, err := ids.Decode(id, "Account"); apperr.CodeOf(err) != apperr.Validation {
			t.Errorf("%s: Decode(%q): %v, want VALIDATION", name, id, err)
		}
	}
}

func TestParse_ClipsLongIDsInItsMessage(t *testing.T) {
	_, _, err := ids.Parse(strings.Repeat("!", 500))
	if e, ok := apperr.As(err); !ok || len(e.Message) > 100 {
		t.Fatalf("Parse of a long garbage ID: %v, want a short VALIDATION message", err)
	}
}

func TestDecode_AnotherTypeIsNotFound(t *testing.T) {
	_, err := ids.Decode(ids.Encode("User", 7), "Account")
	if apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("Decode(User ID, Account): %v, want NOT_FOUND", err)
	}
	if _, err := ids.DecodeAll([]string{ids.Encode("Account", 1), ids.Encode("User", 1)}, "Account"); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("DecodeAll with a User ID: %v, want NOT_FOUND", err)
	}
	if _, err := ids.DecodeAll([]string{ids.Encode("Account", 1), "!!!"}, "Account"); apperr.CodeOf(err) != apperr.Validation {
		t.Fatalf("DecodeAll with garbage: %v, want VALIDATION", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "!!!", "QWNjb3VudDo=", ids.Encode("Account", 1), raw("Account:01"), raw("A:-1"), raw(":"), raw("Account:9223372036854775807")} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		typ, key, err := ids.Parse(id)
		if err != nil {
			if apperr.CodeOf(err) != apperr.Validation {
				t.Fatalf("Parse(%q): code %s, want VALIDATION", id, apperr.CodeOf(err))
			}
			return
		}
		if key <= 0 || typ == "" {
			t.Fatalf("Parse(%q) accepted type %q key %d", id, typ, key)
		}
		t2, k2, err := ids.Parse(ids.Encode(typ, key))
		if err != nil || t2 != typ || k2 != key {
			t.Fatalf("re-encoding Parse(%q) = %s, %d does not round-trip: %s, %d, %v", id, typ, key, t2, k2, err)
		}
	})
}
