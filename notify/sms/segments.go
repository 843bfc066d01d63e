package sms

import "strings"

// gsm7Basic is the GSM 03.38 default alphabet (each character one septet);
// gsm7Extension holds the characters sent as ESC + code (two septets).
const (
	gsm7Basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7Extension = "\f^{}\\[~]|€"
)

// Segments returns how many SMS segments text takes, which is what carriers
// bill. Text entirely in the GSM 7-bit alphabet fits 160 septets in one SMS
// and 153 per part when concatenated, extension characters (€ { } [ ] ~ \ |
// ^ and form feed) counting two. Any other character makes the whole text
// UCS-2: 70 UTF-16 code units in one SMS, 67 per part, characters outside
// the BMP (most emoji) counting two. A two-unit character is never split
// across parts, as phones and SMSCs do, so the count can exceed the plain
// division by one. Empty text takes 0 segments.
//
// Providers that prepend the signature (Aliyun's 【签名】) bill for it too: count
// Segments("【"+sign+"】"+text) for them.
func Segments(text string) int {
	if text == "" {
		return 0
	}
	if isGSM7(text) {
		return pack(text, gsm7Cost, 160, 153)
	}
	return pack(text, ucs2Cost, 70, 67)
}

// pack counts the parts text takes when a single message holds single units
// and each part of a concatenated one holds part units, a character never
// straddling two parts.
func pack(text string, cost func(rune) int, single, part int) int {
	total := 0
	for _, r := range text {
		total += cost(r)
	}
	if total <= single {
		return 1
	}
	parts, used := 1, 0
	for _, r := range text {
		c := cost(r)
		if used+c > part {
			parts++
			used = 0
		}
		used += c
	}
	return parts
}

func isGSM7(text string) bool {
	for _, r := range text {
		if !strings.ContainsRune(gsm7Basic, r) && !strings.ContainsRune(gsm7Extension, r) {
			return false
		}
	}
	return true
}

func gsm7Cost(r rune) int {
	if strings.ContainsRune(gsm7Extension, r) {
		return 2
	}
	return 1
}

func ucs2Cost(r rune) int {
	if r > 0xFFFF {
		return 2 // a surrogate pair
	}
	return 1
}
