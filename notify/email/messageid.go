package email

import (
	"crypto/sha256"
	"encoding/hex"
	"net/mail"
	"strings"
)

// fallbackDomain is the Message-ID domain when From has none usable.
const fallbackDomain = "partnerd.local"

// maxIDLeftKeep is how much of a long encoded key a Message-ID keeps
// readable before the hash that stands for the whole key.
const (
	maxIDLeft     = 128
	maxIDLeftKeep = 64
)

// MessageID is the Message-ID of the message with delivery key key, sent
// from from: "<" + key + "@" + the domain of from (or "partnerd.local") + ">".
// The same key always gives the same ID, so a receiver can drop the
// duplicate a retry may produce. The key is made safe for a msg-id
// (RFC 5322 dot-atom-text) without losing uniqueness: letters, digits, the
// other atext characters and single interior dots stay; any other byte, "="
// itself, and a leading, trailing or repeated dot become "=XX" (uppercase
// hex). A key longer than 128 characters once encoded keeps its first 64 and
// then "=H" and a SHA-256 of the whole key ("=H" never occurs otherwise).
func MessageID(key, from string) string {
	return "<" + idLeft(key) + "@" + idDomain(from) + ">"
}

// idLeft encodes key as a dot-atom-text, injectively.
func idLeft(key string) string {
	var b strings.Builder
	cut := 0 // the longest prefix that ends between whole tokens and not on a dot
	for i := 0; i < len(key); i++ {
		c := key[i]
		out := b.String()
		switch {
		case c == '.' && len(out) > 0 && out[len(out)-1] != '.' && i < len(key)-1:
			b.WriteByte(c)
		case isAtext(c):
			b.WriteByte(c)
		default:
			const hexdigits = "0123456789ABCDEF"
			b.WriteByte('=')
			b.WriteByte(hexdigits[c>>4])
			b.WriteByte(hexdigits[c&0x0f])
		}
		if n := b.Len(); n <= maxIDLeftKeep && c != '.' {
			cut = n
		}
	}
	if b.Len() == 0 {
		return "=" // only the empty key; a lone "=" is no escape
	}
	if b.Len() <= maxIDLeft {
		return b.String()
	}
	sum := sha256.Sum256([]byte(key))
	return b.String()[:cut] + "=H" + hex.EncodeToString(sum[:16])
}

// isAtext reports whether c is an RFC 5322 atext character other than "=",
// which idLeft keeps for its escapes.
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+/?^_`{|}~-", c) >= 0
}

// idDomain is the lower-cased domain of from when it is a plain host name,
// else fallbackDomain.
func idDomain(from string) string {
	addr, err := mail.ParseAddress(from)
	if err != nil {
		return fallbackDomain
	}
	at := strings.LastIndexByte(addr.Address, '@')
	domain := strings.ToLower(addr.Address[at+1:])
	if at < 0 || domain == "" {
		return fallbackDomain
	}
	for label := range strings.SplitSeq(domain, ".") {
		if label == "" {
			return fallbackDomain
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return fallbackDomain
			}
		}
	}
	return domain
}
