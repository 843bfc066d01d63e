package invoice

import (
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// labels are the words of an invoice in one locale, and how that locale
// writes months and instants.
type labels struct {
	Title       string
	Watermark   string // across every page of a draft
	DraftBanner string // under the title of a draft
	Continued   string // heading of the pages after the first, %s is the number

	Number, Month, Issued, Status, Currency string
	StatusDraft, StatusIssued               string
	NotIssued                               string

	Seller, Buyer, Email, Phone string

	ColNo, ColProduct, ColMonth, ColKind, ColList, ColPercent, ColAmount string
	KindUsage, KindAdjustment, KindVoucher                               string
	NoLines                                                              string

	ListTotal, Total string
	Footnote         string
	VoucherNote      string // after Footnote when the invoice has voucher lines
	Page             string // footer, %d of %d

	month     func(time.Time) string // "October 2026"
	shortMon  func(time.Time) string // "Oct 2026", in the table
	timestamp func(time.Time) string // an instant already in Beijing time
}

// roundingRuleEnUS is the rounding footnote; its words are part of the
// contract with the rating rules, keep them in step.
const roundingRuleEnUS = "Each line's amount is list × (1 + percent/100), rounded half-even to 2 decimals; the total is the sum of the rounded lines."

// roundingRuleZhCN is roundingRuleEnUS in Chinese.
const roundingRuleZhCN = "每行金额 = 目录价 × (1 + 百分比/100)，按银行家舍入法（四舍六入五成双）保留 2 位小数；合计为各行舍入后金额之和。"

// voucherRuleEnUS follows the rounding footnote on an invoice with voucher
// lines; like it, keep it in step with the customer bills' rating.
const voucherRuleEnUS = "A voucher line deducts what vouchers paid of the product's usage, rounded half-even to 2 decimals and never more than that usage line's amount."

// voucherRuleZhCN is voucherRuleEnUS in Chinese.
const voucherRuleZhCN = "代金券行扣减代金券为该产品用量支付的金额，按银行家舍入法保留 2 位小数，且不超过该产品用量行的金额。"

var localeLabels = map[string]*labels{
	LocaleEnUS: {
		Title:       "Invoice",
		Watermark:   "DRAFT",
		DraftBanner: "DRAFT — not a final invoice",
		Continued:   "Invoice %s (continued)",

		Number:       "Invoice number",
		Month:        "Billing month",
		Issued:       "Issued",
		Status:       "Status",
		Currency:     "Currency",
		StatusDraft:  "Draft",
		StatusIssued: "Issued",
		NotIssued:    "—",

		Seller: "Seller",
		Buyer:  "Bill to",
		Email:  "Email",
		Phone:  "Phone",

		ColNo:          "#",
		ColProduct:     "Product",
		ColMonth:       "Month",
		ColKind:        "Type",
		ColList:        "List price",
		ColPercent:     "Discount / markup",
		ColAmount:      "Amount",
		KindUsage:      "Usage",
		KindAdjustment: "Adjustment",
		KindVoucher:    "Voucher",
		NoLines:        "No charges this month.",

		ListTotal:   "List-price total",
		Total:       "Total",
		Footnote:    roundingRuleEnUS,
		VoucherNote: voucherRuleEnUS,
		Page:        "Page %d of %d",

		month:    func(t time.Time) string { return t.Format("January 2006") },
		shortMon: func(t time.Time) string { return t.Format("Jan 2006") },
		timestamp: func(t time.Time) string {
			return t.Format("January 2, 2006, 3:04 PM") + " (Beijing time)"
		},
	},
	LocaleZhCN: {
		Title:       "发票",
		Watermark:   "草稿",
		DraftBanner: "草稿 — 非正式发票",
		Continued:   "发票 %s（续）",

		Number:       "发票编号",
		Month:        "账单月份",
		Issued:       "开具时间",
		Status:       "状态",
		Currency:     "币种",
		StatusDraft:  "草稿",
		StatusIssued: "已开具",
		NotIssued:    "—",

		Seller: "销售方",
		Buyer:  "购买方",
		Email:  "邮箱",
		Phone:  "电话",

		ColNo:          "序号",
		ColProduct:     "产品代码",
		ColMonth:       "所属月份",
		ColKind:        "类型",
		ColList:        "目录价",
		ColPercent:     "折扣/加价",
		ColAmount:      "金额",
		KindUsage:      "用量",
		KindAdjustment: "调整",
		KindVoucher:    "代金券",
		NoLines:        "本月无费用。",

		ListTotal:   "目录价合计",
		Total:       "合计",
		Footnote:    roundingRuleZhCN,
		VoucherNote: voucherRuleZhCN,
		Page:        "第 %d 页，共 %d 页",

		month:    func(t time.Time) string { return fmt.Sprintf("%d年%d月", t.Year(), t.Month()) },
		shortMon: func(t time.Time) string { return fmt.Sprintf("%d年%d月", t.Year(), t.Month()) },
		timestamp: func(t time.Time) string {
			return fmt.Sprintf("%d年%d月%d日 %s（北京时间）", t.Year(), t.Month(), t.Day(), t.Format("15:04"))
		},
	},
}

// beijing is Beijing time. China has kept UTC+08:00 all year since 1991, so
// a fixed zone is Asia/Shanghai for every instant an invoice can carry, on
// hosts with or without a time zone database.
var beijing = time.FixedZone("CST", 8*3600)

// money writes an amount with exactly two decimals (half-even) and a comma
// between thousands: "-1,234,567.50".
func money(d decimal.Decimal) string {
	s := d.StringFixedBank(2)
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	b.WriteString(sign)
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	b.WriteByte('.')
	b.WriteString(frac)
	return b.String()
}

// percent writes a rating percentage with its sign: "-10%", "+5%", "0%",
// "-12.5%".
func percent(d decimal.Decimal) string {
	s := d.String()
	if d.IsPositive() {
		s = "+" + s
	}
	return s + "%"
}
