package accounts

import (
	"net/mail"
	"regexp"
	"strings"
	"unicode/utf8"

	"partnerd/apperr"
	"partnerd/models"
)

var (
	phonePattern  = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	tagKeyPattern = regexp.MustCompile(`^[\p{L}\p{N}_.:/@+-]{1,64}$`)
)

// Limits on tags (cost-allocation labels).
const (
	MaxTags        = 50
	MaxTagValueLen = 256
)

// iso4217 lists the active ISO 4217 currency codes.
var iso4217 = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range strings.Fields(`AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD
CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF
IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR
MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS
SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG`) {
		m[c] = true
	}
	return m
}()

// ValidateName checks a display name: 1 to 200 characters after trimming.
func ValidateName(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", apperr.Invalid(field, "%s must not be empty", field)
	}
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > 200 {
		return "", apperr.Invalid(field, "%s must be at most 200 characters", field)
	}
	return s, nil
}

// ValidateEmail checks a plain email address (no display name) and returns
// it trimmed.
func ValidateEmail(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" || len(s) > 254 || !strings.Contains(s[strings.LastIndexByte(s, '@')+1:], ".") {
		return "", apperr.Invalid(field, "%q is not a valid email address", apperr.Clip(s))
	}
	return s, nil
}

// ValidatePhone checks a phone number in E.164 form (+8613800138000).
func ValidatePhone(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	if !phonePattern.MatchString(s) {
		return "", apperr.Invalid(field, "%q is not a phone number in E.164 form such as +8613800138000", apperr.Clip(s))
	}
	return s, nil
}

// ValidateCurrency checks an ISO 4217 code; empty means CNY.
func ValidateCurrency(field, s string) (string, error) {
	if s == "" {
		return "CNY", nil
	}
	if !iso4217[s] {
		return "", apperr.Invalid(field, "%q is not an ISO 4217 currency code such as CNY or USD", apperr.Clip(s))
	}
	return s, nil
}

// ValidateTags checks cost-allocation tags: at most 50, keys of letters,
// digits and _.:/@+- up to 64 characters, values up to 256 characters, no key
// twice.
func ValidateTags(field string, tags []Tag) (models.Tags, error) {
	if len(tags) > MaxTags {
		return nil, apperr.Invalid(field, "at most %d tags per account", MaxTags)
	}
	out := models.Tags{}
	for _, t := range tags {
		if !tagKeyPattern.MatchString(t.Key) {
			return nil, apperr.Invalid(field, "tag key %q must be 1 to 64 letters, digits or _.:/@+-", apperr.Clip(t.Key))
		}
		if !utf8.ValidString(t.Value) || utf8.RuneCountInString(t.Value) > MaxTagValueLen {
			return nil, apperr.Invalid(field, "tag %q: the value must be at most %d characters", t.Key, MaxTagValueLen)
		}
		if _, dup := out[t.Key]; dup {
			return nil, apperr.Invalid(field, "tag key %q appears twice", t.Key)
		}
		out[t.Key] = t.Value
	}
	return out, nil
}

// ValidateRoles checks a non-empty role list; REVIEWER only on the platform.
func ValidateRoles(roles []models.Role, kind models.AccountKind) (models.Roles, error) {
	if len(roles) == 0 {
		return nil, apperr.Invalid("roles", "a user needs at least one role")
	}
	out := models.Roles{}
	for _, r := range roles {
		if !r.IsValid() {
			return nil, apperr.Invalid("roles", "unknown role %q", apperr.Clip(string(r)))
		}
		if r == models.RoleReviewer && kind != models.KindPlatform {
			return nil, apperr.Invalid("roles", "REVIEWER is a role of platform users only")
		}
		if !out.Has(r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// ValidateLocale checks a locale; empty means en-US.
func ValidateLocale(s string) (models.Locale, error) {
	switch models.Locale(s) {
	case "":
		return models.LocaleEnUS, nil
	case models.LocaleEnUS, models.LocaleZhCN:
		return models.Locale(s), nil
	}
	return "", apperr.Invalid("locale", "locale %q is not supported: use en-US or zh-CN", apperr.Clip(s))
}

// allowedParents is the parent rules table of DOMAIN.md §1.
var allowedParents = map[models.AccountKind][]models.AccountKind{
	models.KindDistributor: {models.KindPlatform},
	models.KindReseller:    {models.KindPlatform, models.KindDistributor},
	models.KindCustomer:    {models.KindDistributor, models.KindReseller},
	models.KindPersonal:    {models.KindPlatform},
}

// CanBeChildOf reports whether an account of kind child may sit under an
// account of kind parent.
func CanBeChildOf(child, parent models.AccountKind) bool {
	for _, k := range allowedParents[child] {
		if k == parent {
			return true
		}
	}
	return false
}
