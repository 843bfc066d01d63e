package sms

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/url"
	"sort"
	"strings"
)

// signRPC returns the signature of an Alibaba Cloud RPC-style request
// (SignatureVersion 1.0, HMAC-SHA1) made with method and params (every
// parameter but Signature itself):
//
//	StringToSign = method + "&" + percentEncode("/") + "&" + percentEncode(canonicalQuery(params))
//	Signature    = base64(HMAC-SHA1(secret + "&", StringToSign))
//
// The method must be the one the request is sent with.
func signRPC(method string, params map[string]string, secret string) string {
	stringToSign := method + "&" + percentEncode("/") + "&" + percentEncode(canonicalQuery(params))
	mac := hmac.New(sha1.New, []byte(secret+"&"))
	mac.Write([]byte(stringToSign))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// canonicalQuery joins params sorted by key as percent-encoded key=value
// pairs separated by "&".
func canonicalQuery(params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(percentEncode(k))
		b.WriteByte('=')
		b.WriteString(percentEncode(params[k]))
	}
	return b.String()
}

// percentEncode is Alibaba Cloud's RFC 3986 encoding of UTF-8 text: only
// A-Z a-z 0-9 - _ . ~ stay as they are, space is %20 (not +).
func percentEncode(s string) string {
	e := url.QueryEscape(s)
	e = strings.ReplaceAll(e, "+", "%20")
	e = strings.ReplaceAll(e, "*", "%2A")
	return strings.ReplaceAll(e, "%7E", "~")
}
