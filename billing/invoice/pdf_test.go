package invoice

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ledongthuc/pdf"
	"github.com/signintech/gopdf"
)

func renderPDF(t testing.TB, inv Invoice) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := PDF(&b, inv); err != nil {
		t.Fatalf("PDF: %v", err)
	}
	return b.Bytes()
}

// readPDF parses doc with an independent PDF reader and returns the text of
// each page, decoded through the fonts' ToUnicode maps.
func readPDF(t *testing.T, doc []byte) (*pdf.Reader, []string) {
	t.Helper()
	r, err := pdf.NewReader(bytes.NewReader(doc), int64(len(doc)))
	if err != nil {
		t.Fatalf("read PDF: %v", err)
	}
	pages := make([]string, r.NumPage())
	for i := range pages {
		p := r.Page(i + 1)
		fonts := map[string]*pdf.Font{}
		for _, name := range p.Fonts() {
			f := p.Font(name)
			fonts[name] = &f
		}
		text, err := p.GetPlainText(fonts)
		if err != nil {
			t.Fatalf("text of page %d: %v", i+1, err)
		}
		pages[i] = text
	}
	return r, pages
}

func TestPDF_LongChineseInvoice_FlowsOverPagesAndReadsBack(t *testing.T) {
	inv := sample(LocaleZhCN, 120)
	doc := renderPDF(t, inv)
	r, pages := readPDF(t, doc)
	all := strings.Join(pages, "\n")

	if len(pages) < 2 {
		t.Fatalf("%d page(s) for 120 lines, want more than 1", len(pages))
	}
	if !strings.Contains(all, buyerZh) {
		t.Errorf("the buyer's name %q is not in the text", buyerZh)
	}
	for _, want := range []string{"CNY 1,234,567.89", "CNY 1,357,924.68", "目录价合计", "合计", roundingRuleZhCN[:30]} {
		if !strings.Contains(all, want) {
			t.Errorf("text lacks %q", want)
		}
	}
	for _, i := range []int{0, 1, 10, 59, 60, 61, 118, 119} {
		if !strings.Contains(all, money(lineAmount(i))) || !strings.Contains(all, inv.Lines[i].ProductCode) {
			t.Errorf("line %d (%s, %s) is not in the text", i+1, inv.Lines[i].ProductCode, money(lineAmount(i)))
		}
	}
	// Every line is there once, in order, and each page that carries lines
	// starts its table with the header.
	next := 0
	for p, text := range pages {
		first := next
		for next < len(inv.Lines) && strings.Contains(text, "\n"+inv.Lines[next].ProductCode+"\n") {
			next++
		}
		if next > first && !strings.Contains(text, "产品代码") {
			t.Errorf("page %d has lines %d to %d but no table header", p+1, first+1, next)
		}
		if footer := fmt.Sprintf("第 %d 页，共 %d 页", p+1, len(pages)); !strings.Contains(text, footer) {
			t.Errorf("page %d lacks its footer %q", p+1, footer)
		}
		if p > 0 && !strings.Contains(text, "发票 "+inv.Number+"（续）") {
			t.Errorf("page %d does not name the invoice it continues", p+1)
		}
	}
	if next != len(inv.Lines) {
		t.Errorf("only the first %d of %d lines found in page order", next, len(inv.Lines))
	}

	// The font is embedded as a TrueType subset: the whole font is 3.8 MB.
	font := r.Page(1).Font(r.Page(1).Fonts()[0])
	desc := font.V.Key("DescendantFonts").Index(0).Key("FontDescriptor")
	if desc.Key("FontFile2").IsNull() {
		t.Error("the font is not embedded (no FontFile2)")
	}
	if base := font.V.Key("BaseFont").Name(); !strings.HasPrefix(base, "WQYMHI+") {
		t.Errorf("BaseFont %q does not name a subset", base)
	}
	if len(doc) > 400_000 {
		t.Errorf("PDF is %d bytes: the font was not subset", len(doc))
	}
}

func TestPDF_English(t *testing.T) {
	inv := sample(LocaleEnUS, 5)
	inv.Buyer.Name = "Acme Widgets GmbH"
	_, pages := readPDF(t, renderPDF(t, inv))
	all := strings.Join(pages, "\n")
	for _, want := range []string{"Invoice", "BILL TO", "Acme Widgets GmbH", "October 2026", "Sep 2026", "Adjustment", "List-price total", "CNY 1,234,567.89", "Page 1 of 1", "November 1, 2026, 12:30 AM (Beijing time)"} {
		if !strings.Contains(all, want) {
			t.Errorf("text lacks %q", want)
		}
	}
	if strings.Contains(all, "合计") {
		t.Error("an en-US invoice has Chinese labels")
	}
}

func TestPDF_DraftIsMarkedOnEveryPage(t *testing.T) {
	inv := sample(LocaleEnUS, 120)
	_, issued := readPDF(t, renderPDF(t, inv))
	inv.Status = StatusDraft
	_, draft := readPDF(t, renderPDF(t, inv))
	if len(draft) < 2 {
		t.Fatalf("%d page(s)", len(draft))
	}
	for p, text := range draft {
		if !strings.Contains(text, "DRAFT") {
			t.Errorf("draft page %d has no DRAFT mark", p+1)
		}
	}
	if !strings.Contains(draft[0], "DRAFT — not a final invoice") {
		t.Error("the first page of a draft lacks the banner")
	}
	for p, text := range issued {
		if strings.Contains(text, "DRAFT") {
			t.Errorf("issued page %d is marked as a draft", p+1)
		}
	}
}

// TestPDF_NothingOverflowsThePage measures every run of text the PDF draws
// (with a gopdf of its own, not the renderer's measurements) and checks it
// stays inside the margins, with names, codes and amounts far too long for
// their boxes.
func TestPDF_NothingOverflowsThePage(t *testing.T) {
	inv := sample(LocaleZhCN, 30)
	inv.Buyer.Name = strings.Repeat(buyerZh, 6) + " Shenzhen Xinghe Technology Company Limited, Nanshan District Branch Office"
	inv.Seller.Name = strings.Repeat("Nimbus Cloud Reseller ", 200) // cut at maxPartyLines
	inv.Seller.Email = "accounts-receivable-department-of-the-partner-with-a-long-address@billing.nimbus-cloud-reseller.example"
	inv.Number = "INV-202610-" + strings.Repeat("0", 80) + "123"
	inv.Lines[2].ProductCode = strings.Repeat("VERYLONGPRODUCTCODEWITHOUTANYBREAK", 3)
	inv.Lines[4].Amount = inv.Lines[4].Amount.Add(lineAmount(0).Shift(14)) // 25,000,000,000,000.25-ish
	inv.Total = lineAmount(0).Shift(16)

	doc := renderPDF(t, inv)
	r, pages := readPDF(t, doc)
	measure := newMeasurer(t)
	nameLines := map[float64]bool{}
	for p := 1; p <= r.NumPage(); p++ {
		for _, run := range textRuns(r.Page(p)) {
			w := measure(run.s, run.size)
			if run.x < margin-0.01 || run.x+w > pageW-margin+0.01 {
				t.Errorf("page %d: %q spans x %.1f to %.1f, outside the margins %.0f to %.0f", p, run.s, run.x, run.x+w, margin, pageW-margin)
			}
			if run.y < 20 || run.y > pageH-margin {
				t.Errorf("page %d: %q at y %.1f, off the page's body", p, run.s, run.y)
			}
			if p == 1 && strings.Contains(run.s, buyerZh[:6]) {
				nameLines[run.y] = true
			}
		}
	}
	if len(nameLines) < 2 {
		t.Errorf("the long buyer name sits on %d line(s), want it wrapped", len(nameLines))
	}
	if !strings.Contains(pages[0], "Nimbus Cloud Reseller Nimbus") || !strings.Contains(pages[0], "…") {
		t.Error("the seller's overlong name is not shown cut with an ellipsis")
	}
	if all := strings.Join(pages, ""); !strings.Contains(strings.ReplaceAll(all, "\n", ""), inv.Lines[2].ProductCode) {
		t.Error("the long product code lost characters when wrapped")
	}
}

type textRun struct {
	x, y, size float64
	s          string
}

// textRuns groups the characters the reader reports into the runs the PDF
// draws: one text object each, all starting at the same point (the reader
// does not advance x inside a Type 0 font's run).
func textRuns(p pdf.Page) []textRun {
	var runs []textRun
	for _, c := range p.Content().Text {
		if c.S == "\uFFFD" { // the newline the reader adds after each TJ, decoded through the font
			continue
		}
		if n := len(runs); n > 0 && runs[n-1].x == c.X && runs[n-1].y == c.Y && runs[n-1].size == c.FontSize {
			runs[n-1].s += c.S
			continue
		}
		runs = append(runs, textRun{x: c.X, y: c.Y, size: c.FontSize, s: c.S})
	}
	return runs
}

// newMeasurer measures text in the embedded font with a gopdf document of
// its own.
func newMeasurer(t *testing.T) func(s string, size float64) float64 {
	t.Helper()
	var g gopdf.GoPdf
	g.Start(gopdf.Config{PageSize: *gopdf.PageSizeA4})
	if err := g.AddTTFFontData("m", fontData); err != nil {
		t.Fatal(err)
	}
	return func(s string, size float64) float64 {
		if err := g.SetFont("m", "", size); err != nil {
			t.Fatal(err)
		}
		w, err := g.MeasureTextWidth(s)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
}

func TestWrap_LinesFitAndKeepEveryCharacter(t *testing.T) {
	d := &pdfDoc{widths: map[rune]float64{}}
	fonts, err := parsedFont()
	if err != nil {
		t.Fatal(err)
	}
	d.pdf.Start(gopdf.Config{PageSize: *gopdf.PageSizeA4})
	if err := d.pdf.AddTTFFontFromFontContainer(fontFamily, fonts); err != nil {
		t.Fatal(err)
	}
	d.setFont(10)
	measure := newMeasurer(t)
	for _, tc := range []struct {
		s     string
		width float64
		lines []string // nil: only check that the lines fit
	}{
		{"", 100, []string{""}},
		{"Acme Ltd.", 500, []string{"Acme Ltd."}},
		{"one two three four five six", 60, nil},
		{"OSS-STORAGE-STANDARD-ARCHIVE", 70, nil},
		{strings.Repeat(buyerZh, 4), 55, nil},
		{"WWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWW", 30, nil},
		{"W", 1, []string{"W"}}, // a glyph wider than the box still shows
	} {
		lines := d.wrap(tc.s, 10, tc.width)
		if tc.lines != nil && strings.Join(lines, "|") != strings.Join(tc.lines, "|") {
			t.Errorf("wrap(%q, %v) = %q, want %q", tc.s, tc.width, lines, tc.lines)
		}
		for _, l := range lines {
			if w := measure(l, 10); w > tc.width+0.001 && len([]rune(l)) > 1 {
				t.Errorf("wrap(%q, %v): line %q is %.2f wide", tc.s, tc.width, l, w)
			}
		}
		if got, want := strings.ReplaceAll(strings.Join(lines, ""), " ", ""), strings.ReplaceAll(tc.s, " ", ""); got != want {
			t.Errorf("wrap(%q, %v) lost characters: %q", tc.s, tc.width, lines)
		}
		if tc.s == "one two three four five six" {
			// Broken between words only, and no line starts or ends with
			// the space it was broken at.
			for _, l := range lines {
				if l != strings.TrimSpace(l) {
					t.Errorf("wrap kept a space at a break: %q", lines)
				}
				for _, word := range strings.Fields(l) {
					if !slices.Contains(strings.Fields(tc.s), word) {
						t.Errorf("wrap broke inside a word: %q", lines)
					}
				}
			}
		}
	}
	if d.err != nil {
		t.Fatal(d.err)
	}
}

func TestPDF_NoLines(t *testing.T) {
	_, pages := readPDF(t, renderPDF(t, sample(LocaleZhCN, 0)))
	if len(pages) != 1 || !strings.Contains(pages[0], "本月无费用。") || !strings.Contains(pages[0], "CNY 1,234,567.89") {
		t.Errorf("an invoice without lines: %q", pages)
	}
}

// TestPDF_Concurrent renders from several goroutines: the parsed font is
// shared, and the race detector must find nothing.
func TestPDF_Concurrent(t *testing.T) {
	var wg sync.WaitGroup
	docs := make([][]byte, 6)
	for i := range docs {
		wg.Go(func() {
			locale := LocaleEnUS
			if i%2 == 1 {
				locale = LocaleZhCN
			}
			var b bytes.Buffer
			if err := PDF(&b, sample(locale, 40+i)); err != nil {
				t.Error(err)
			}
			docs[i] = b.Bytes()
		})
	}
	wg.Wait()
	for i, doc := range docs {
		_, pages := readPDF(t, doc)
		if !strings.Contains(strings.Join(pages, "\n"), money(lineAmount(39+i))) {
			t.Errorf("document %d lacks its last line", i)
		}
	}
}

func BenchmarkPDF(b *testing.B) {
	inv := sample(LocaleZhCN, 20)
	if err := PDF(io.Discard, inv); err != nil { // parse the font outside the loop
		b.Fatal(err)
	}
	b.ReportAllocs()
	var size int
	for b.Loop() {
		var buf bytes.Buffer
		if err := PDF(&buf, inv); err != nil {
			b.Fatal(err)
		}
		size = buf.Len()
	}
	b.ReportMetric(float64(size), "bytes/pdf")
}

func BenchmarkHTML(b *testing.B) {
	inv := sample(LocaleZhCN, 20)
	b.ReportAllocs()
	for b.Loop() {
		if err := HTML(io.Discard, inv); err != nil {
			b.Fatal(err)
		}
	}
}

func TestPDF_VoucherLineReadsBack(t *testing.T) {
	_, pages := readPDF(t, renderPDF(t, withVoucher(LocaleZhCN)))
	all := strings.Join(pages, "\n")
	for _, w := range []string{"代金券", "-30.00", voucherRuleZhCN[:18]} {
		if !strings.Contains(all, w) {
			t.Errorf("text lacks %q", w)
		}
	}
}
