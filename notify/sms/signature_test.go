package sms

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
	"testing"
)

// refSignature computes Alibaba Cloud's RPC signature (version 1.0) from the
// documented steps, independently of the package's code: RFC 3986
// percent-encoding byte by byte, keys sorted, "k=v" joined by "&",
// StringToSign = METHOD&%2F&encode(query), base64(HMAC-SHA1(secret+"&")).
func refSignature(method string, params map[string]string, secret string) string {
	enc := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			c := s[i]
			if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~", c) >= 0 {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		return b.String()
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	pairs := make([]string, len(keys))
	for i, k := range keys {
		pairs[i] = enc(k) + "=" + enc(params[k])
	}
	mac := hmac.New(sha1.New, []byte(secret+"&"))
	mac.Write([]byte(method + "&%2F&" + enc(strings.Join(pairs, "&"))))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// docParams is the example request of Aliyun's SendSms signature
// documentation, signed there with GET and the secret "testSecret".
var docParams = map[string]string{
	"AccessKeyId":      "testId",
	"Action":           "SendSms",
	"Format":           "XML",
	"OutId":            "123",
	"PhoneNumbers":     "15300000001",
	"RegionId":         "cn-hangzhou",
	"SignName":         "阿里云短信测试专用",
	"SignatureMethod":  "HMAC-SHA1",
	"SignatureNonce":   "45e25e9b-0a6f-4070-8c85-2956eda1b466",
	"SignatureVersion": "1.0",
	"TemplateCode":     "SMS_71390007",
	"TemplateParam":    `{"customer":"test"}`,
	"Timestamp":        "2017-07-12T02:42:19Z",
	"Version":          "2017-05-25",
}

func TestSignRPC_DocumentedExample(t *testing.T) {
	wantQuery := "AccessKeyId=testId&Action=SendSms&Format=XML&OutId=123&PhoneNumbers=15300000001&RegionId=cn-hangzhou" +
		"&SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF%A1%E6%B5%8B%E8%AF%95%E4%B8%93%E7%94%A8" +
		"&SignatureMethod=HMAC-SHA1&SignatureNonce=45e25e9b-0a6f-4070-8c85-2956eda1b466&SignatureVersion=1.0" +
		"&TemplateCode=SMS_71390007&TemplateParam=%7B%22customer%22%3A%22test%22%7D&Timestamp=2017-07-12T02%3A42%3A19Z&Version=2017-05-25"
	if got := canonicalQuery(docParams); got != wantQuery {
		t.Errorf("canonicalQuery\n got %s\nwant %s", got, wantQuery)
	}
	const want = "zJDF+Lrzhj/ThnlvIToysFRq6t4=" // published with the example
	if got := signRPC("GET", docParams, "testSecret"); got != want {
		t.Errorf("signRPC(GET, documented example) = %s, want %s", got, want)
	}
	if got := refSignature("GET", docParams, "testSecret"); got != want {
		t.Errorf("the test's reference signature = %s, want %s: the reference is wrong", got, want)
	}
	if signRPC("POST", docParams, "testSecret") == want {
		t.Error("the method is not part of the signed string")
	}
}

func TestSignRPC_MatchesReferenceOnAwkwardText(t *testing.T) {
	texts := []string{
		"plain",
		"with space",
		"a+b=c&d",
		"star*tilde~slash/colon:",
		"您的账户余额不足 100 元，请及时充值。",
		`{"content":"引号\"和\\反斜杠"}`,
		"emoji 😀 and € and 100%",
	}
	for _, text := range texts {
		params := map[string]string{"Action": "SendSms", "TemplateParam": text, "SignName": text}
		if got, want := signRPC("POST", params, "k&ey secret"), refSignature("POST", params, "k&ey secret"); got != want {
			t.Errorf("signRPC with %q = %s, reference %s", text, got, want)
		}
	}
}

func TestPercentEncode(t *testing.T) {
	tests := map[string]string{
		"a b":   "a%20b",
		"a+b":   "a%2Bb",
		"*":     "%2A",
		"~":     "~",
		"-_.":   "-_.",
		"/":     "%2F",
		"=&":    "%3D%26",
		"中":     "%E4%B8%AD",
		"09AZz": "09AZz",
	}
	for in, want := range tests {
		if got := percentEncode(in); got != want {
			t.Errorf("percentEncode(%q) = %q, want %q", in, got, want)
		}
	}
}
