package invoice

import (
	"bytes"
	"html"
	"strings"
	"testing"
	"time"
)

func renderHTML(t *testing.T, inv Invoice) string {
	t.Helper()
	var b bytes.Buffer
	if err := HTML(&b, inv); err != nil {
		t.Fatalf("HTML: %v", err)
	}
	return b.String()
}

func TestHTML_BothLocales_ShowEveryLineAndTheTotalsAsGiven(t *testing.T) {
	for _, tc := range []struct {
		locale string
		words  []string // labels that must be there, translated
	}{
		{LocaleEnUS, []string{`<html lang="en-US">`, "Invoice", "Bill to", "Billing month", "October 2026", "Sep 2026", "Adjustment", "Usage", "List-price total", "Total", roundingRuleEnUS}},
		{LocaleZhCN, []string{`<html lang="zh-CN">`, "发票", "购买方", "账单月份", "2026年10月", "2026年9月", "调整", "用量", "目录价合计", "合计", roundingRuleZhCN}},
	} {
		t.Run(tc.locale, func(t *testing.T) {
			inv := sample(tc.locale, 12)
			page := renderHTML(t, inv)
			text := html.UnescapeString(page)
			for _, w := range tc.words {
				if !strings.Contains(text, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			if strings.Count(page, "<tr><td>") != len(inv.Lines) {
				t.Errorf("%d line rows, want %d", strings.Count(page, "<tr><td>"), len(inv.Lines))
			}
			for i, l := range inv.Lines {
				if !strings.Contains(page, "<td>"+l.ProductCode+"</td>") || !strings.Contains(page, `<td class="num">`+money(lineAmount(i))+"</td>") {
					t.Errorf("line %d (%s, %s) missing", i+1, l.ProductCode, money(lineAmount(i)))
				}
			}
			// As given, not recomputed: neither total is the sum of the lines.
			for _, total := range []string{"CNY 1,234,567.89", "CNY 1,357,924.68"} {
				if !strings.Contains(page, total) {
					t.Errorf("page lacks total %q", total)
				}
			}
			// The other locale's words must not leak in.
			other := localeLabels[LocaleZhCN]
			if tc.locale == LocaleZhCN {
				other = localeLabels[LocaleEnUS]
			}
			if strings.Contains(text, other.ListTotal) || strings.Contains(text, other.Footnote) {
				t.Errorf("page has labels of the other locale")
			}
			if strings.Contains(page, "<script") || strings.Contains(page, "<link") || strings.Contains(page, " src=") {
				t.Errorf("page is not self-contained")
			}
		})
	}
}

func TestHTML_EscapesEveryText(t *testing.T) {
	const hostile = `<script>alert(1)</script>`
	inv := sample(LocaleEnUS, 2)
	inv.Buyer.Name = hostile
	inv.Seller.Email = `"><img src=x onerror=alert(2)>`
	inv.Lines[1].ProductCode = hostile
	inv.Number = `INV-1</title><script>alert(3)</script>`
	page := renderHTML(t, inv)
	for _, bad := range []string{"<script", "<img", "</title><"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q unescaped", bad)
		}
	}
	if n := strings.Count(page, "&lt;script&gt;alert(1)&lt;/script&gt;"); n != 2 {
		t.Errorf("escaped hostile name shown %d times, want 2 (buyer and line)", n)
	}
}

func TestHTML_DraftIsMarked(t *testing.T) {
	inv := sample(LocaleZhCN, 1)
	issued := renderHTML(t, inv)
	inv.Status = StatusDraft
	draft := renderHTML(t, inv)
	for _, mark := range []string{`class="draft-banner"`, `class="watermark"`, "草稿 — 非正式发票"} {
		if !strings.Contains(draft, mark) {
			t.Errorf("draft lacks %q", mark)
		}
		if strings.Contains(issued, mark) {
			t.Errorf("issued invoice has the draft mark %q", mark)
		}
	}
}

func TestHTML_DraftNotIssuedYet(t *testing.T) {
	inv := sample(LocaleEnUS, 1)
	inv.Status, inv.IssuedAt, inv.Number = StatusDraft, time.Time{}, ""
	page := renderHTML(t, inv)
	if !strings.Contains(page, "<dt>Issued</dt><dd>—</dd>") || !strings.Contains(page, "<dt>Invoice number</dt><dd>—</dd>") {
		t.Error("a draft without number and issue time does not show dashes")
	}
}

func TestHTML_NoLines(t *testing.T) {
	page := renderHTML(t, sample(LocaleEnUS, 0))
	if !strings.Contains(page, "No charges this month.") {
		t.Error("an invoice without lines does not say so")
	}
}

func TestHTML_VoucherLineIsANegativeAmount(t *testing.T) {
	page := html.UnescapeString(renderHTML(t, withVoucher(LocaleEnUS)))
	for _, w := range []string{"<td>Voucher</td>", `<td class="num">-30.00</td>`, `<td class="num">—</td>`, voucherRuleEnUS} {
		if !strings.Contains(page, w) {
			t.Errorf("page lacks %q", w)
		}
	}
}
