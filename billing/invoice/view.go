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
	// Footnote is the rounding rule, and the voucher rule if any line is a
	// voucher.
	Footnote string
}

type partyView struct {
	Name, Email, Phone string
}

// noValue fills a cell that has no value on its line.
const noValue = "—"

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
		Footnote:  l.Footnote,
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
	vouchers := false
	for i, line := range inv.Lines {
		m := month
		if line.ForMonth != "" {
			m, _ = parseMonth(line.ForMonth) // validated
		}
		lv := lineView{
			No:      strconv.Itoa(i + 1),
			Product: clean(line.ProductCode),
			Month:   l.shortMon(m),
			Kind:    l.KindUsage,
			List:    money(line.List),
			Percent: percent(line.Percent),
			Amount:  money(line.Amount),
		}
		switch line.Kind {
		case KindAdjustment:
			lv.Kind = l.KindAdjustment
		case KindVoucher:
			// A deduction has no list price and no rating: a dash, not a
			// 0.00 that would read as a free product.
			lv.Kind, lv.List, lv.Percent = l.KindVoucher, noValue, noValue
			vouchers = true
		}
		v.Lines[i] = lv
	}
	if vouchers {
		v.Footnote += " " + l.VoucherNote
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
