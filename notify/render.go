package notify

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/models"
)

//go:embed templates/*.tmpl
var templateFiles embed.FS

// Locales are the languages every event type has templates in.
func Locales() []models.Locale { return []models.Locale{models.LocaleEnUS, models.LocaleZhCN} }

// The parts every template file defines.
const (
	partSubject = "subject"
	partText    = "text"
	partHTML    = "html"
	partSMS     = "sms"
)

// Message is a notification rendered for one recipient: the email subject
// (also the in-site title), the plain-text and HTML bodies, and the SMS text.
type Message struct {
	Subject, Text, HTML, SMS string
}

// Renderer renders the catalogue's events from the embedded templates
// (templates/<event type>.<locale>.tmpl, each defining subject, text, html
// and sms). Rendering fails on a missing key. It is safe for concurrent use.
type Renderer struct {
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
}

// NewRenderer parses the templates of every event type of c in every locale
// and fails if one is missing or lacks a part.
func NewRenderer(c *Catalogue) (*Renderer, error) {
	r := &Renderer{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	funcs := map[string]any{"money": money, "beijing": beijing}
	for _, typ := range c.Types() {
		for _, loc := range Locales() {
			name := templateName(typ, loc)
			src, err := templateFiles.ReadFile("templates/" + name)
			if err != nil {
				return nil, fmt.Errorf("template %s: %w", name, err)
			}
			tt, err := texttemplate.New(name).Option("missingkey=error").Funcs(funcs).Parse(string(src))
			if err != nil {
				return nil, fmt.Errorf("template %s: %w", name, err)
			}
			ht, err := htmltemplate.New(name).Option("missingkey=error").Funcs(funcs).Parse(string(src))
			if err != nil {
				return nil, fmt.Errorf("template %s: %w", name, err)
			}
			for _, part := range []string{partSubject, partText, partHTML, partSMS} {
				if tt.Lookup(part) == nil {
					return nil, fmt.Errorf("template %s: no %q part", name, part)
				}
			}
			r.text[name], r.html[name] = tt, ht
		}
	}
	return r, nil
}

func templateName(eventType string, loc models.Locale) string {
	return eventType + "." + string(loc) + ".tmpl"
}

// Names resolves the account ids an event mentions to display names.
type Names func(accountID int64) (string, error)

// view is what a template sees: .Event (the typed event), .Recipient (the
// name to greet) and .Account id (an account's name).
type view struct {
	Event     any
	Recipient string
	names     Names
}

// Account is the display name of the account with id.
func (v view) Account(id int64) (string, error) { return v.names(id) }

// Render renders event (of eventType) for a recipient called recipient in
// locale. Every part must come out non-empty.
func (r *Renderer) Render(eventType string, loc models.Locale, event any, recipient string, names Names) (Message, error) {
	if loc != models.LocaleZhCN {
		loc = models.LocaleEnUS
	}
	name := templateName(eventType, loc)
	tt, ok := r.text[name]
	if !ok {
		return Message{}, fmt.Errorf("render %s: no template %s", eventType, name)
	}
	data := view{Event: event, Recipient: recipient, names: names}
	var m Message
	var err error
	exec := func(part string) string {
		if err != nil {
			return ""
		}
		var b bytes.Buffer
		if err = tt.ExecuteTemplate(&b, part, data); err != nil {
			err = fmt.Errorf("render %s %s: %w", name, part, err)
		}
		return strings.TrimSpace(b.String())
	}
	m.Subject = strings.Join(strings.Fields(exec(partSubject)), " ")
	m.Text = exec(partText)
	m.SMS = strings.Join(strings.Fields(exec(partSMS)), " ")
	if err != nil {
		return Message{}, err
	}
	var body bytes.Buffer
	if err := r.html[name].ExecuteTemplate(&body, partHTML, data); err != nil {
		return Message{}, fmt.Errorf("render %s html: %w", name, err)
	}
	var page bytes.Buffer
	if err := htmlPage.Execute(&page, pageData{Lang: string(loc), Title: m.Subject,
		Body: htmltemplate.HTML(body.String()), Footer: footer(loc)}); err != nil { // #nosec: the body was escaped by html/template
		return Message{}, fmt.Errorf("render %s page: %w", name, err)
	}
	m.HTML = page.String()
	m.Text += "\n\n-- \n" + footer(loc)
	for part, s := range map[string]string{partSubject: m.Subject, partText: m.Text, partHTML: m.HTML, partSMS: m.SMS} {
		if strings.TrimSpace(s) == "" {
			return Message{}, fmt.Errorf("render %s: the %s part is empty", name, part)
		}
	}
	return m, nil
}

// footer closes every email, per locale.
func footer(loc models.Locale) string {
	if loc == models.LocaleZhCN {
		return "您作为伙伴中心的用户收到此通知。可在“设置 > 通知”中选择接收哪些通知以及接收方式。"
	}
	return "You receive this as a user of Partner Center. Choose which notifications reach you, and how, under Settings > Notifications."
}

type pageData struct {
	Lang, Title, Footer string
	Body                htmltemplate.HTML
}

// htmlPage wraps every HTML body: inline styles only, as mail clients want.
var htmlPage = htmltemplate.Must(htmltemplate.New("page").Parse(`<!DOCTYPE html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body style="font-family:-apple-system,'Segoe UI','PingFang SC','Microsoft YaHei',sans-serif;font-size:14px;color:#1f2329;line-height:1.6">
{{.Body}}
<hr style="border:none;border-top:1px solid #e5e6eb">
<p style="font-size:12px;color:#8f959e">{{.Footer}}</p>
</body></html>
`))

// money formats a decimal amount with thousands separators and two or more
// decimals ("1234567.5" → "1,234,567.50"); text that is not a decimal is
// returned as is.
func money(s string) string {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return s
	}
	str := models.FormatDecimal(d)
	neg := strings.HasPrefix(str, "-")
	str = strings.TrimPrefix(str, "-")
	intPart, frac, _ := strings.Cut(str, ".")
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	out := b.String() + "." + frac
	if neg {
		out = "-" + out
	}
	return out
}

// beijingZone is Beijing time, in which people read the times of events.
var beijingZone = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		return time.FixedZone("CST", 8*3600)
	}
	return loc
}()

// beijing formats an RFC 3339 time in Beijing time
// ("2026-11-20T08:00:00Z" → "2026-11-20 16:00 (UTC+08:00)"); text that is
// not an RFC 3339 time is returned as is.
func beijing(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return s
	}
	return t.In(beijingZone).Format("2006-01-02 15:04 (UTC-07:00)")
}
