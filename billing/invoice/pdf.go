package invoice

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/signintech/gopdf"
)

// PDF writes inv as an A4 PDF in inv.Locale with the embedded font
// (subset to the glyphs used). The line table flows onto as many pages as it
// needs with its header repeated on each; long names and codes wrap inside
// their column; every page carries the invoice number and "page i of n",
// and every page of a draft a DRAFT watermark. Nothing is written to w if
// inv is invalid (ErrInvalid) or the document cannot be built.
func PDF(w io.Writer, inv Invoice) error {
	v, err := newView(&inv)
	if err != nil {
		return fmt.Errorf("render invoice %q as PDF: %w", inv.Number, err)
	}
	fonts, err := parsedFont()
	if err != nil {
		return fmt.Errorf("render invoice %q as PDF: %w", inv.Number, err)
	}
	d := &pdfDoc{v: v, widths: map[rune]float64{}}
	d.pdf.Start(gopdf.Config{PageSize: *gopdf.PageSizeA4, Unit: gopdf.UnitPT})
	d.pdf.SetInfo(gopdf.PdfInfo{
		Title:   v.L.Title + " " + v.Number,
		Subject: v.Month,
		Creator: "partnerd",
	})
	if err := d.pdf.AddTTFFontFromFontContainer(fontFamily, fonts); err != nil {
		return fmt.Errorf("render invoice %q as PDF: add font: %w", inv.Number, err)
	}
	d.setFont(sizeBody)
	d.render()
	if d.err != nil {
		return fmt.Errorf("render invoice %q as PDF: %w", inv.Number, d.err)
	}
	// Built in memory first so a failure leaves no half document behind.
	var buf bytes.Buffer
	if _, err := d.pdf.WriteTo(&buf); err != nil {
		return fmt.Errorf("render invoice %q as PDF: %w", inv.Number, err)
	}
	if _, err := buf.WriteTo(w); err != nil {
		return fmt.Errorf("write invoice %q as PDF: %w", inv.Number, err)
	}
	return nil
}

// Page geometry, in points (A4 is 595 × 842).
const (
	pageW    = 595.0
	pageH    = 842.0
	margin   = 40.0
	contentW = pageW - 2*margin
	footerY  = pageH - margin + 8 // top of the footer's text
	bottom   = pageH - margin - 6 // nothing of the body goes below
)

// Type sizes, line height and the padding of table cells.
const (
	sizeTitle     = 24.0
	sizeBody      = 9.0
	sizeName      = 11.0
	sizeTable     = 8.5
	sizeTotal     = 11.0
	sizeSmall     = 7.5
	sizeWatermark = 110.0
	leading       = 1.35 // line height / type size
	cellPadX      = 4.0
	cellPadY      = 3.0
)

type rgb struct{ r, g, b uint8 }

var (
	colorText      = rgb{31, 35, 40}
	colorMuted     = rgb{87, 96, 106}
	colorRule      = rgb{140, 149, 159}
	colorLightRule = rgb{225, 228, 232}
	colorHeadFill  = rgb{238, 241, 244}
	colorZebra     = rgb{248, 249, 250}
	colorDraft     = rgb{198, 40, 40}
)

// column is one column of the line table.
type column struct {
	head  string
	width float64
	right bool
	cell  func(lineView) string
}

// pdfDoc lays out one invoice. Drawing errors are sticky: the first one is
// kept in err and every later step does nothing, so the layout reads as a
// sequence of steps rather than a ladder of error checks.
type pdfDoc struct {
	pdf    gopdf.GoPdf
	v      *view
	err    error
	y      float64          // top of the next thing to draw
	pages  int              // pages added so far
	size   float64          // current type size
	widths map[rune]float64 // advance of a rune at size 1000
}

func (d *pdfDoc) render() {
	d.newPage()
	d.heading()
	d.parties()
	d.table()
	d.totals()
	d.footers()
}

// newPage starts a page.
func (d *pdfDoc) newPage() {
	if d.err != nil {
		return
	}
	d.pdf.AddPage()
	d.pages++
	d.y = margin
}

// continuation starts a new page after the first: it names the invoice so
// a loose page can be matched to it.
func (d *pdfDoc) continuation() {
	d.newPage()
	d.setFont(sizeBody)
	d.setTextColor(colorMuted)
	for _, s := range d.wrap(fmt.Sprintf(d.v.L.Continued, d.v.Number), sizeBody, contentW) {
		d.cell(margin, d.y, contentW, s, false)
		d.y += sizeBody * leading
	}
	d.y += 8
}

// watermark lays the draft mark across the page, translucent so that it
// neither hides nor is hidden by the table's shading.
func (d *pdfDoc) watermark() {
	if d.err != nil {
		return
	}
	d.setFont(sizeWatermark)
	d.setTextColor(colorDraft)
	text := d.v.L.Watermark
	w := d.textWidth(text, sizeWatermark)
	cx, cy := pageW/2, pageH/2
	d.pdf.Rotate(35, cx, cy)
	d.pdf.SetXY(cx-w/2, cy-sizeWatermark*0.6)
	err := d.pdf.CellWithOption(&gopdf.Rect{W: w, H: 1}, text, gopdf.CellOption{
		Align:        gopdf.Left | gopdf.Top,
		Transparency: &gopdf.Transparency{Alpha: 0.12, BlendModeType: gopdf.NormalBlendMode},
	})
	if err != nil {
		d.err = fmt.Errorf("write watermark: %w", err)
	}
	d.pdf.RotateReset()
}

// heading draws the title (and the draft banner) on the left and the
// invoice's facts on the right.
func (d *pdfDoc) heading() {
	l := d.v.L
	top := d.y

	d.setFont(sizeTitle)
	d.setTextColor(colorText)
	leftW := contentW*0.42 - 10
	y := top
	for _, s := range d.wrap(l.Title, sizeTitle, leftW) {
		d.cell(margin, y, leftW, s, false)
		y += sizeTitle * leading
	}
	if d.v.Draft {
		y += 4
		d.setFont(sizeBody + 1)
		lh := (sizeBody + 1) * leading
		lines := d.wrap(l.DraftBanner, sizeBody+1, leftW-12)
		h := float64(len(lines))*lh + 6
		bw := 0.0
		for _, s := range lines {
			bw = math.Max(bw, d.textWidth(s, sizeBody+1))
		}
		d.strokeRect(margin, y, bw+12, h, colorDraft, 1.5)
		d.setTextColor(colorDraft)
		for i, s := range lines {
			d.cell(margin+6, y+3+float64(i)*lh, bw, s, false)
		}
		y += h
	}
	leftBottom := y

	x := margin + contentW*0.42
	labelW := 92.0
	valueW := margin + contentW - x - labelW
	facts := [][2]string{
		{l.Number, d.v.Number},
		{l.Month, d.v.Month},
		{l.Issued, d.v.Issued},
		{l.Status, d.v.Status},
		{l.Currency, d.v.Currency},
	}
	y = top + 4
	d.setFont(sizeBody)
	lh := sizeBody * leading
	for _, f := range facts {
		names := d.wrap(f[0], sizeBody, labelW-8)
		values := d.clip(d.wrap(f[1], sizeBody, valueW), maxPartyLines, sizeBody, valueW)
		d.setTextColor(colorMuted)
		for i, s := range names {
			d.cell(x, y+float64(i)*lh, labelW-8, s, false)
		}
		d.setTextColor(colorText)
		for i, s := range values {
			d.cell(x+labelW, y+float64(i)*lh, valueW, s, false)
		}
		y += float64(max(len(names), len(values)))*lh + 2
	}
	d.y = math.Max(leftBottom, y) + 18
}

// parties draws the seller and the buyer side by side.
func (d *pdfDoc) parties() {
	gap := 20.0
	w := (contentW - gap) / 2
	a := d.party(margin, d.y, w, d.v.L.Seller, d.v.Seller)
	b := d.party(margin+w+gap, d.y, w, d.v.L.Buyer, d.v.Buyer)
	d.y = math.Max(a, b) + 18
}

// party draws one party in a column of width w and returns the y below it.
func (d *pdfDoc) party(x, y, w float64, heading string, p partyView) float64 {
	l := d.v.L
	d.setFont(sizeSmall + 0.5)
	d.setTextColor(colorMuted)
	for _, s := range d.wrap(strings.ToUpper(heading), sizeSmall+0.5, w) {
		d.cell(x, y, w, s, false)
		y += (sizeSmall + 0.5) * leading
	}
	d.line(x, y+1, x+w, y+1, colorLightRule, 0.5)
	y += 4
	d.setFont(sizeName)
	d.setTextColor(colorText)
	for _, s := range d.clip(d.wrap(p.Name, sizeName, w), maxPartyLines, sizeName, w) {
		d.cell(x, y, w, s, false)
		y += sizeName * leading
	}
	d.setFont(sizeBody)
	for _, f := range [][2]string{{l.Email, p.Email}, {l.Phone, p.Phone}} {
		if f[1] == "" {
			continue
		}
		for _, s := range d.clip(d.wrap(f[0]+": "+f[1], sizeBody, w), maxPartyLines, sizeBody, w) {
			d.cell(x, y, w, s, false)
			y += sizeBody * leading
		}
	}
	return y
}

// columns are the line table's columns; the product column takes what the
// others leave.
func (d *pdfDoc) columns() []column {
	l, cur := d.v.L, d.v.Currency
	cols := []column{
		{head: l.ColNo, width: 28, cell: func(r lineView) string { return r.No }},
		{head: l.ColProduct, cell: func(r lineView) string { return r.Product }},
		{head: l.ColMonth, width: 56, cell: func(r lineView) string { return r.Month }},
		{head: l.ColKind, width: 56, cell: func(r lineView) string { return r.Kind }},
		{head: l.ColList + " (" + cur + ")", width: 82, right: true, cell: func(r lineView) string { return r.List }},
		{head: l.ColPercent, width: 60, right: true, cell: func(r lineView) string { return r.Percent }},
		{head: l.ColAmount + " (" + cur + ")", width: 86, right: true, cell: func(r lineView) string { return r.Amount }},
	}
	rest := contentW
	for _, c := range cols {
		rest -= c.width
	}
	cols[1].width = rest
	return cols
}

// table draws the lines, moving to a new page (with the header repeated)
// whenever the next row does not fit.
func (d *pdfDoc) table() {
	cols := d.columns()
	d.tableHeader(cols)
	if len(d.v.Lines) == 0 {
		d.setFont(sizeTable)
		d.setTextColor(colorMuted)
		d.cell(margin+cellPadX, d.y+cellPadY, contentW-2*cellPadX, d.v.L.NoLines, false)
		d.y += sizeTable*leading + 2*cellPadY
		d.line(margin, d.y, margin+contentW, d.y, colorLightRule, 0.5)
		return
	}
	for i, row := range d.v.Lines {
		cells := make([][]string, len(cols))
		n := 1
		for j, c := range cols {
			cells[j] = d.wrap(c.cell(row), sizeTable, c.width-2*cellPadX)
			n = max(n, len(cells[j]))
		}
		d.tableRow(cols, cells, n, i%2 == 1)
	}
}

// tableRow draws one row of n lines. A row that does not fit below moves
// whole to the next page; only a row taller than a page is split.
func (d *pdfDoc) tableRow(cols []column, cells [][]string, n int, zebra bool) {
	lh := sizeTable * leading
	fresh := false // right under a header on a new page
	for from := 0; from < n && d.err == nil; {
		fit := int((bottom - d.y - 2*cellPadY) / lh)
		if fit < n-from && !fresh {
			d.continuation()
			d.tableHeader(cols)
			fresh = true
			continue
		}
		k := min(max(fit, 1), n-from)
		h := float64(k)*lh + 2*cellPadY
		if zebra {
			d.fillRect(margin, d.y, contentW, h, colorZebra)
		}
		d.setFont(sizeTable)
		d.setTextColor(colorText)
		x := margin
		for j, c := range cols {
			for i := from; i < from+k && i < len(cells[j]); i++ {
				d.cell(x+cellPadX, d.y+cellPadY+float64(i-from)*lh, c.width-2*cellPadX, cells[j][i], c.right)
			}
			x += c.width
		}
		d.y += h
		d.line(margin, d.y, margin+contentW, d.y, colorLightRule, 0.5)
		from += k
		if from < n {
			d.continuation()
			d.tableHeader(cols)
			fresh = true
		}
	}
}

func (d *pdfDoc) tableHeader(cols []column) {
	lh := sizeTable * leading
	heads := make([][]string, len(cols))
	n := 1
	for j, c := range cols {
		heads[j] = d.wrap(c.head, sizeTable, c.width-2*cellPadX)
		n = max(n, len(heads[j]))
	}
	h := float64(n)*lh + 2*cellPadY
	d.fillRect(margin, d.y, contentW, h, colorHeadFill)
	d.setFont(sizeTable)
	d.setTextColor(colorMuted)
	x := margin
	for j, c := range cols {
		for i, s := range heads[j] {
			d.cell(x+cellPadX, d.y+cellPadY+float64(i)*lh, c.width-2*cellPadX, s, c.right)
		}
		x += c.width
	}
	d.y += h
	d.line(margin, d.y, margin+contentW, d.y, colorRule, 0.8)
}

// totals draws the list-price total, the total and the footnote (the
// rounding rule, and the voucher rule if any), on a new page if they do not
// fit below the table.
func (d *pdfDoc) totals() {
	if d.err != nil {
		return
	}
	l := d.v.L
	labelW, valueW := 130.0, 130.0
	x := margin + contentW - labelW - valueW
	rows := []struct {
		label, value string
		size         float64
		color        rgb
	}{
		{l.ListTotal, d.v.Currency + " " + d.v.ListTotal, sizeBody, colorMuted},
		{l.Total, d.v.Currency + " " + d.v.Total, sizeTotal, colorText},
	}
	type laid struct{ labels, values []string }
	lay := make([]laid, len(rows))
	height := 14.0
	for i, r := range rows {
		lay[i] = laid{d.wrap(r.label, r.size, labelW-8), d.wrap(r.value, r.size, valueW)}
		height += float64(max(len(lay[i].labels), len(lay[i].values)))*r.size*leading + 6
	}
	note := d.wrap(d.v.Footnote, sizeSmall+0.5, contentW)
	height += 14 + float64(len(note))*(sizeSmall+0.5)*leading
	if d.y+height > bottom {
		d.continuation()
	}

	d.y += 12
	for i, r := range rows {
		if i == len(rows)-1 {
			d.line(x, d.y-2, margin+contentW, d.y-2, colorText, 1.2)
			d.y += 2
		}
		d.setFont(r.size)
		lh := r.size * leading
		d.setTextColor(r.color)
		for k, s := range lay[i].labels {
			d.cell(x, d.y+float64(k)*lh, labelW-8, s, false)
		}
		d.setTextColor(colorText)
		for k, s := range lay[i].values {
			d.cell(x+labelW, d.y+float64(k)*lh, valueW, s, true)
		}
		d.y += float64(max(len(lay[i].labels), len(lay[i].values)))*lh + 6
	}

	d.y += 14
	d.setFont(sizeSmall + 0.5)
	d.setTextColor(colorMuted)
	for _, s := range note {
		d.cell(margin, d.y, contentW, s, false)
		d.y += (sizeSmall + 0.5) * leading
	}
}

// footers writes "invoice number · page i of n" at the foot of every page,
// once n is known, and lays the watermark over every page of a draft.
func (d *pdfDoc) footers() {
	for p := 1; p <= d.pages && d.err == nil; p++ {
		if err := d.pdf.SetPage(p); err != nil {
			d.err = fmt.Errorf("go to page %d: %w", p, err)
			return
		}
		d.line(margin, footerY-4, margin+contentW, footerY-4, colorLightRule, 0.5)
		d.setFont(sizeSmall)
		d.setTextColor(colorMuted)
		page := fmt.Sprintf(d.v.L.Page, p, d.pages)
		pw := d.textWidth(page, sizeSmall) + 1
		left := d.wrap(d.v.L.Title+" "+d.v.Number, sizeSmall, contentW-pw-12)
		d.cell(margin, footerY, contentW-pw-12, left[0], false)
		d.cell(margin+contentW-pw, footerY, pw, page, true)
		if d.v.Draft {
			d.watermark()
		}
	}
}

// wrap breaks s into lines no wider than width at type size size: at the
// last space or after the last hyphen, slash, underscore or comma that
// fits (so a huge amount breaks at a thousands separator), else
// (CJK text, a long code or address) between any two characters.
func (d *pdfDoc) wrap(s string, size, width float64) []string {
	rs := []rune(s)
	var lines []string
	// The line being filled is rs[start:i]; brkEnd and brkNext, when
	// brkEnd > start, are where it may end and the next line begin.
	start, brkEnd, brkNext := 0, -1, -1
	w := 0.0
	for i := 0; i < len(rs); {
		rw := d.runeWidth(rs[i], size)
		if w+rw > width && i > start {
			end, next := i, i
			switch {
			case rs[i] == ' ':
				next = i + 1
			case brkEnd > start:
				end, next = brkEnd, brkNext
			}
			lines = append(lines, strings.TrimRight(string(rs[start:end]), " "))
			for next < len(rs) && rs[next] == ' ' {
				next++
			}
			start, i, w, brkEnd = next, next, 0, -1
			continue
		}
		switch rs[i] {
		case ' ':
			brkEnd, brkNext = i, i+1
		case '-', '/', '_', ',':
			brkEnd, brkNext = i+1, i+1
		}
		w += rw
		i++
	}
	if start < len(rs) || len(lines) == 0 {
		lines = append(lines, strings.TrimRight(string(rs[start:]), " "))
	}
	return lines
}

// maxPartyLines bounds each value of the heading and of a party, which do
// not flow onto a next page: 12 lines hold a name of several hundred
// characters, and a longer one is cut with an ellipsis rather than pushed
// off the page (the HTML page shows it whole).
const maxPartyLines = 12

// clip keeps the first n of lines, ending the last one kept with "…" if
// any was dropped.
func (d *pdfDoc) clip(lines []string, n int, size, width float64) []string {
	if len(lines) <= n {
		return lines
	}
	lines = lines[:n:n]
	last := []rune(lines[n-1])
	for len(last) > 0 && d.textWidth(string(last)+"…", size) > width {
		last = last[:len(last)-1]
	}
	lines[n-1] = string(last) + "…"
	return lines
}

// textWidth is the width of s at type size size.
func (d *pdfDoc) textWidth(s string, size float64) float64 {
	w := 0.0
	for _, r := range s {
		w += d.runeWidth(r, size)
	}
	return w
}

// runeWidth is the advance of r at type size size. Kerning is off, so a
// text's width is the sum of its runes' and each is measured once.
func (d *pdfDoc) runeWidth(r rune, size float64) float64 {
	w, ok := d.widths[r]
	if !ok && d.err == nil {
		// Measured at size 1000, where the font's advances are whole
		// numbers, then put back to the size being drawn.
		_ = d.pdf.SetFontSize(1000)
		var err error
		if w, err = d.pdf.MeasureTextWidth(string(r)); err != nil {
			d.err = fmt.Errorf("measure %q: %w", r, err)
		}
		_ = d.pdf.SetFontSize(d.size)
		d.widths[r] = w
	}
	return w * size / 1000
}

// The drawing steps below do nothing once an error is kept.

func (d *pdfDoc) setFont(size float64) {
	d.size = size
	if d.err == nil {
		if err := d.pdf.SetFont(fontFamily, "", size); err != nil {
			d.err = fmt.Errorf("set font: %w", err)
		}
	}
}

func (d *pdfDoc) setTextColor(c rgb) { d.pdf.SetTextColor(c.r, c.g, c.b) }

// cell writes one line of text with its top at y, in a box of width w,
// aligned right or left.
func (d *pdfDoc) cell(x, y, w float64, s string, right bool) {
	if d.err != nil || s == "" {
		return
	}
	align := gopdf.Left | gopdf.Top
	if right {
		align = gopdf.Right | gopdf.Top
	}
	d.pdf.SetXY(x, y)
	if err := d.pdf.CellWithOption(&gopdf.Rect{W: w, H: 1}, s, gopdf.CellOption{Align: align}); err != nil {
		d.err = fmt.Errorf("write text: %w", err)
	}
}

func (d *pdfDoc) line(x1, y1, x2, y2 float64, c rgb, width float64) {
	if d.err != nil {
		return
	}
	d.pdf.SetLineWidth(width)
	d.pdf.SetStrokeColor(c.r, c.g, c.b)
	d.pdf.Line(x1, y1, x2, y2)
}

func (d *pdfDoc) fillRect(x, y, w, h float64, c rgb) {
	if d.err != nil {
		return
	}
	d.pdf.SetFillColor(c.r, c.g, c.b)
	d.pdf.RectFromUpperLeftWithStyle(x, y, w, h, "F")
}

func (d *pdfDoc) strokeRect(x, y, w, h float64, c rgb, width float64) {
	if d.err != nil {
		return
	}
	d.pdf.SetLineWidth(width)
	d.pdf.SetStrokeColor(c.r, c.g, c.b)
	d.pdf.RectFromUpperLeftWithStyle(x, y, w, h, "D")
}
