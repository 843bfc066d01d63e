package invoice

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// buyerZh is the Chinese customer name the PDF tests look for.
const buyerZh = "深圳星河科技有限公司"

// sample is an issued invoice of n lines whose amounts (lineAmount) all
// differ, so a test can look for each one. Every seventh line is an
// adjustment of the month before. The totals are deliberately not the sums
// of the lines: the renderers must print them as given.
func sample(locale string, n int) Invoice {
	inv := Invoice{
		Number:    "INV-202610-000123",
		Month:     "2026-10",
		Status:    StatusIssued,
		IssuedAt:  time.Date(2026, 10, 31, 16, 30, 0, 0, time.UTC), // 1 Nov 00:30 in Beijing
		Locale:    locale,
		Currency:  "CNY",
		Seller:    Party{Name: "Nimbus Cloud Reseller Ltd.", Email: "billing@nimbus.example", Phone: "+86 755 1234 5678"},
		Buyer:     Party{Name: buyerZh, Email: "finance@xinghe.example", Phone: "+86 138 0013 8000"},
		ListTotal: decimal.RequireFromString("1357924.681"),
		Total:     decimal.RequireFromString("1234567.89"),
	}
	for i := range n {
		l := Line{
			ProductCode: fmt.Sprintf("ECS-%03d", i),
			Kind:        KindUsage,
			List:        decimal.New(int64(20000+i*7), -1), // 2000.0, 2000.7, ...
			Percent:     decimal.NewFromInt(-10),
			Amount:      lineAmount(i),
		}
		if i%7 == 3 {
			l.Kind, l.ForMonth, l.Percent = KindAdjustment, "2026-09", decimal.RequireFromString("5.5")
		}
		inv.Lines = append(inv.Lines, l)
	}
	return inv
}

// lineAmount is the amount of line i of sample: unique, with a thousands
// separator from line 10 on.
func lineAmount(i int) decimal.Decimal { return decimal.New(int64(i*10_000+i*101+25), -2) }

func TestMoney_TwoDecimalsAndThousands(t *testing.T) {
	for in, want := range map[string]string{
		"0":           "0.00",
		"5":           "5.00",
		"-0.5":        "-0.50",
		"999.99":      "999.99",
		"1000":        "1,000.00",
		"-1234567.5":  "-1,234,567.50",
		"123456.785":  "123,456.78", // half-even, for list prices given with more decimals
		"123456.795":  "123,456.80",
		"10000000.01": "10,000,000.01",
	} {
		if got := money(decimal.RequireFromString(in)); got != want {
			t.Errorf("money(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestPercent_Signed(t *testing.T) {
	for in, want := range map[string]string{"-10": "-10%", "5": "+5%", "0": "0%", "-12.50": "-12.5%"} {
		if got := percent(decimal.RequireFromString(in)); got != want {
			t.Errorf("percent(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestClean_OneLineOfText(t *testing.T) {
	for in, want := range map[string]string{
		"  Acme\r\n Ltd.\t":         "Acme Ltd.",
		"深圳\u202e星河":                "深圳 星河", // a bidi override cannot reorder what follows
		"a\x00b":                    "a b",
		"<script>alert(1)</script>": "<script>alert(1)</script>", // escaping is the renderer's job
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestView_IssuedAtInBeijingTime(t *testing.T) {
	for _, tc := range []struct{ locale, want string }{
		{LocaleEnUS, "November 1, 2026, 12:30 AM (Beijing time)"},
		{LocaleZhCN, "2026年11月1日 00:30（北京时间）"},
	} {
		v, err := newView(ptr(sample(tc.locale, 1)))
		if err != nil {
			t.Fatal(err)
		}
		if v.Issued != tc.want {
			t.Errorf("%s: issued %q, want %q", tc.locale, v.Issued, tc.want)
		}
	}
}

func TestView_LineMonths(t *testing.T) {
	v, err := newView(ptr(sample(LocaleZhCN, 4)))
	if err != nil {
		t.Fatal(err)
	}
	if v.Lines[0].Month != "2026年10月" || v.Lines[3].Month != "2026年9月" {
		t.Errorf("months %q and %q, want the invoice's month for a usage line and ForMonth for the adjustment", v.Lines[0].Month, v.Lines[3].Month)
	}
	if v.Lines[3].Kind != "调整" || v.Lines[0].Kind != "用量" {
		t.Errorf("kinds %q and %q", v.Lines[0].Kind, v.Lines[3].Kind)
	}
}

func TestRender_RefusesInvalidInvoices(t *testing.T) {
	cases := map[string]func(*Invoice){
		"unknown locale":     func(inv *Invoice) { inv.Locale = "fr-FR" },
		"unknown status":     func(inv *Invoice) { inv.Status = "PAID" },
		"issued, no time":    func(inv *Invoice) { inv.IssuedAt = time.Time{} },
		"malformed month":    func(inv *Invoice) { inv.Month = "2026-13" },
		"malformed currency": func(inv *Invoice) { inv.Currency = "yuan" },
		"unrounded total":    func(inv *Invoice) { inv.Total = decimal.RequireFromString("10.005") },
		"unknown kind":       func(inv *Invoice) { inv.Lines[1].Kind = "CREDIT" },
		"malformed for month": func(inv *Invoice) {
			inv.Lines[1].ForMonth = "September"
		},
		"unrounded amount": func(inv *Invoice) { inv.Lines[1].Amount = decimal.RequireFromString("1.001") },
	}
	renderers := map[string]func(io.Writer, Invoice) error{"HTML": HTML, "PDF": PDF}
	for name, spoil := range cases {
		for rname, render := range renderers {
			inv := sample(LocaleEnUS, 3)
			spoil(&inv)
			var out bytes.Buffer
			err := render(&out, inv)
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%s, %s: err = %v, want ErrInvalid", rname, name, err)
			}
			if out.Len() != 0 {
				t.Errorf("%s, %s: wrote %d bytes of a refused invoice", rname, name, out.Len())
			}
		}
	}
}

func TestRender_FailingWriterIsReported(t *testing.T) {
	for name, render := range map[string]func(io.Writer, Invoice) error{"HTML": HTML, "PDF": PDF} {
		if err := render(failingWriter{}, sample(LocaleEnUS, 2)); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("%s: err = %v, want the writer's error", name, err)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func ptr[T any](v T) *T { return &v }

// withVoucher is sample with a voucher line after its first line: a
// deduction of 30, with no list price or percentage of its own.
func withVoucher(locale string) Invoice {
	inv := sample(locale, 4)
	v := Line{ProductCode: inv.Lines[0].ProductCode, Kind: KindVoucher, Amount: decimal.RequireFromString("-30")}
	inv.Lines = slices.Insert(inv.Lines, 1, v)
	return inv
}

func TestView_VoucherLine(t *testing.T) {
	for _, tc := range []struct{ locale, kind string }{{LocaleEnUS, "Voucher"}, {LocaleZhCN, "代金券"}} {
		v, err := newView(ptr(withVoucher(tc.locale)))
		if err != nil {
			t.Fatal(err)
		}
		l := v.Lines[1]
		if l.Kind != tc.kind || l.Amount != "-30.00" || l.List != "—" || l.Percent != "—" {
			t.Errorf("%s: voucher line %+v", tc.locale, l)
		}
		labels := localeLabels[tc.locale]
		if v.Footnote != labels.Footnote+" "+labels.VoucherNote {
			t.Errorf("%s: footnote %q lacks the voucher rule", tc.locale, v.Footnote)
		}
		plain, _ := newView(ptr(sample(tc.locale, 4)))
		if plain.Footnote != labels.Footnote {
			t.Errorf("%s: footnote %q of an invoice without vouchers", tc.locale, plain.Footnote)
		}
	}
}
