package invoice

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
)

//go:embed invoice.html.tmpl
var htmlSource string

// partyBlock is what the "party" template shows: a seller or buyer under
// its heading.
type partyBlock struct {
	Heading string
	Party   partyView
	L       *labels
}

// htmlTemplate is parsed once; a template that does not parse fails every
// test of this package.
var htmlTemplate = template.Must(template.New("invoice").
	Option("missingkey=error").
	Funcs(template.FuncMap{
		"party": func(heading string, p partyView, l *labels) partyBlock {
			return partyBlock{Heading: heading, Party: p, L: l}
		},
	}).
	Parse(htmlSource))

// HTML writes inv as a self-contained HTML page (styles inline, no external
// resource) in inv.Locale, ready to show or print on A4. Every text of the
// invoice is escaped by html/template. Nothing is written to w if inv is
// invalid (ErrInvalid) or the page cannot be rendered.
func HTML(w io.Writer, inv Invoice) error {
	v, err := newView(&inv)
	if err != nil {
		return fmt.Errorf("render invoice %q as HTML: %w", inv.Number, err)
	}
	// Rendered into a buffer first so a failure leaves no half page behind.
	var buf bytes.Buffer
	if err := htmlTemplate.Execute(&buf, v); err != nil {
		return fmt.Errorf("render invoice %q as HTML: %w", inv.Number, err)
	}
	if _, err := buf.WriteTo(w); err != nil {
		return fmt.Errorf("write invoice %q as HTML: %w", inv.Number, err)
	}
	return nil
}
