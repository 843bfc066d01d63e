package invoice

import (
	"strconv"
	"strings"
	"unicode"
)

// view is an invoice with every value already written out in its locale:
// what both renderers show, so the HTML page and the PDF cannot disagree.
type view struct {
	Lang     string
	L        *labels
	Draft    bool
	Number   string
	Month    string
	Issued   string
	Status   string
	Currency string
	Seller   partyView
	Buyer    partyView
	Lines    []lineView

	ListTotal, Total string
}

type partyView struct {
	Name, Email, Phone string
}

type lineView struct {
	No                                          string
	Product, Month, Kind, List, Percent, Amount string
}

// newView validates inv and writes out its values.
func newView(inv *Invoice) (*view, error) {
	if err := inv.validate(); err != nil {
		return nil, err
	}
	l := localeLabels[inv.Locale]
	month, _ := parseMonth(inv.Month) // validated
	v := &view{
		Lang:      inv.Locale,
		L:         l,
		Draft:     inv.Status == StatusDraft,
		Number:    clean(inv.Number),
		Month:     l.month(month),
		Issued:    l.NotIssued,
		Status:    l.StatusIssued,
		Currency:  inv.Currency,
		Seller:    newPartyView(inv.Seller),
		Buyer:     newPartyView(inv.Buyer),
		Lines:     make([]lineView, len(inv.Lines)),
		ListTotal: money(inv.ListTotal),
		Total:     money(inv.Total),
	}
	if v.Number == "" {
		v.Number = l.NotIssued
	}
	if v.Draft {
		v.Status = l.StatusDraft
	}
	if !inv.IssuedAt.IsZero() {
		v.Issued = l.timestamp(inv.IssuedAt.In(beijing))
	}
	for i, line := range inv.Lines {
		m := month
		if line.ForMonth != "" {
			m, _ = parseMonth(line.ForMonth) // validated
		}
		kind := l.KindUsage
		if line.Kind == KindAdjustment {
			kind = l.KindAdjustment
		}
		v.Lines[i] = lineView{
			No:      strconv.Itoa(i + 1),
			Product: clean(line.ProductCode),
			Month:   l.shortMon(m),
			Kind:    kind,
			List:    money(line.List),
			Percent: percent(line.Percent),
			Amount:  money(line.Amount),
		}
	}
	return v, nil
}

func newPartyView(p Party) partyView {
	return partyView{Name: clean(p.Name), Email: clean(p.Email), Phone: clean(p.Phone)}
}

// clean turns line breaks, tabs and other control or format characters into
// single spaces and trims the result: a name is one logical line, and a
// stray control character must not reach the PDF's text operators or hide
// text on the page.
func clean(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}
