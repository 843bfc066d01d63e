package sms

import "strings"

// ValidPhone reports whether s is an E.164 number: '+' then 8 to 15 digits,
// the first (the country code's) not 0. Spaces, dashes and brackets are not
// accepted; numbers are normalized before they are stored.
func ValidPhone(s string) bool {
	if len(s) < 1+8 || len(s) > 1+15 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// maskPhone renders a number for logs: the last four digits and at most the
// first five, at least four digits hidden ("+8613800138000" ->
// "+86138****8000", "+14155550100" -> "+141****0100"). Anything that is not
// E.164 is not shown at all.
func maskPhone(s string) string {
	if !ValidPhone(s) {
		return "(invalid)"
	}
	digits := s[1:]
	keep := min(5, len(digits)-8)
	hidden := len(digits) - keep - 4
	return "+" + digits[:keep] + strings.Repeat("*", hidden) + digits[len(digits)-4:]
}
