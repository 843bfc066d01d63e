package emailtest_test

import (
	"errors"
	"net/smtp"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"partnerd/notify/email/emailtest"
)

const multipartMsg = "From: Partner Center <noreply@partner.example>\r\n" +
	"To: =?UTF-8?B?5byg5LiJ?= <zhang@customer.example>\r\n" +
	"Subject: =?UTF-8?B?6aKE566X5o+Q6YaS?=\r\n" +
	"Message-ID: <k1@partner.example>\r\n" +
	"Content-Language: zh-CN\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/alternative; boundary=XYZ\r\n" +
	"\r\n" +
	"--XYZ\r\n" +
	"Content-Type: text/plain; charset=UTF-8\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"5oKo5aW977yM\r\n6aKE566X\r\n" +
	"--XYZ\r\n" +
	"Content-Type: text/html; charset=UTF-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"<p>=E6=82=A8=E5=A5=BD</p>\r\n" +
	"--XYZ--\r\n"

func TestSink_RecordsAndDecodes(t *testing.T) {
	sink := emailtest.NewSink(t)
	err := smtp.SendMail(sink.Addr(), smtp.PlainAuth("", "u1", "pw", sink.Host()),
		"noreply@partner.example", []string{"zhang@customer.example"}, []byte(multipartMsg))
	if err != nil {
		t.Fatal(err)
	}
	got := sink.WaitFor(t, 1, 5*time.Second)
	r := got[0]
	if r.ParseErr != nil {
		t.Fatal(r.ParseErr)
	}
	for name, c := range map[string][2]string{
		"from":       {r.From, "noreply@partner.example"},
		"to":         {strings.Join(r.To, ","), "zhang@customer.example"},
		"user":       {r.Username, "u1"},
		"message-id": {r.MessageID, "<k1@partner.example>"},
		"subject":    {r.Subject, "预算提醒"},
		"text":       {r.TextBody, "您好，预算"},
		"html":       {r.HTMLBody, "<p>您好</p>"},
		"language":   {r.Header.Get("Content-Language"), "zh-CN"},
	} {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", name, c[0], c[1])
		}
	}
	if sink.Count() != 1 || sink.Connections() != 1 {
		t.Errorf("count %d, connections %d", sink.Count(), sink.Connections())
	}
}

func TestSink_RejectNextAnswersDATA(t *testing.T) {
	sink := emailtest.NewSink(t)
	sink.RejectNext(451, "greylisted", 2)
	send := func() error {
		return smtp.SendMail(sink.Addr(), nil, "a@x.example", []string{"b@y.example"}, []byte("Subject: s\r\n\r\nbody\r\n"))
	}
	for range 2 {
		var te *textproto.Error
		if err := send(); !errors.As(err, &te) || te.Code != 451 || !strings.Contains(te.Msg, "greylisted") {
			t.Fatalf("rejected send: %v", err)
		}
	}
	if err := send(); err != nil {
		t.Fatalf("third send: %v", err)
	}
	if got := sink.WaitFor(t, 1, 5*time.Second); len(got) != 1 || got[0].TextBody != "body" {
		t.Errorf("sink kept %+v", got)
	}
}

func TestSink_StopAndStartOnTheSamePort(t *testing.T) {
	sink := emailtest.NewSink(t)
	addr := sink.Addr()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Noop(); err != nil {
		t.Fatal(err)
	}
	sink.Stop()
	if err := c.Noop(); err == nil {
		t.Error("a connection survived Stop")
	}
	if _, err := smtp.Dial(addr); err == nil {
		t.Error("dial succeeded while stopped")
	}
	sink.Start()
	if sink.Addr() != addr {
		t.Errorf("restarted on %s, want %s", sink.Addr(), addr)
	}
	if err := smtp.SendMail(addr, nil, "a@x.example", []string{"b@y.example"}, []byte("Subject: s\r\n\r\nbody\r\n")); err != nil {
		t.Fatalf("send after Start: %v", err)
	}
	if n := sink.Connections(); n != 2 {
		t.Errorf("connections = %d, want 2", n)
	}
}
