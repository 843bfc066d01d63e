package billing

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/billing/invoice"
	"partnerd/expenditures"
	"partnerd/ids"
	"partnerd/models"
)

// BillFilename is the CSV download name of bill b's lines.
func BillFilename(b *PartnerBill) string {
	return fmt.Sprintf("partner-bill-%d-%s.csv", b.PartnerID, models.MonthOfKey(b.Month))
}

// WriteBillCSV writes the lines of bill b (which the caller was allowed to
// load, through PartnerBill) as CSV, streamed from a cursor: the bill's own
// month first, then adjustments by month. Amounts are exact (voucher: what
// vouchers paid of the line's actual); text cells are safe to open in a
// spreadsheet.
func (s *Service) WriteBillCSV(ctx context.Context, b *PartnerBill, w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"bill_id", "partner_id", "bill_month", "status", "for_month", "adjustment", "owner_id", "owner_name",
		"customer_id", "customer_name", "product_code", "records", "list", "actual", "voucher"}); err != nil {
		return err
	}
	rows, err := s.st.DB.WithContext(ctx).Raw(`SELECT l.for_month, l.owner_id, o.name, l.customer_id, c.name, l.product_code, l.records, l.list, l.actual, l.voucher
		FROM partner_bill_lines l JOIN accounts o ON o.id = l.owner_id JOIN accounts c ON c.id = l.customer_id
		WHERE l.bill_id = ? ORDER BY l.for_month <> ?, l.for_month, l.customer_id, l.product_code, l.owner_id`, b.ID, b.Month).Rows()
	if err != nil {
		return fmt.Errorf("read the lines of bill %d: %w", b.ID, err)
	}
	defer rows.Close()
	bill, partner, month := b.GlobalID(), ids.Encode(accounts.TypeAccount, b.PartnerID), models.MonthOfKey(b.Month).String()
	for rows.Next() {
		var (
			forMonth, records      int64
			owner, customer        int64
			ownerName, customerNam string
			product                string
			list, actual, voucher  decimal.Decimal
		)
		if err := rows.Scan(&forMonth, &owner, &ownerName, &customer, &customerNam, &product, &records, &list, &actual, &voucher); err != nil {
			return fmt.Errorf("read the lines of bill %d: %w", b.ID, err)
		}
		if err := cw.Write([]string{bill, partner, month, string(b.Status), models.MonthOfKey(int(forMonth)).String(),
			strconv.FormatBool(int(forMonth) != b.Month), ids.Encode(accounts.TypeAccount, owner), expenditures.SafeCell(ownerName),
			ids.Encode(accounts.TypeAccount, customer), expenditures.SafeCell(customerNam), expenditures.SafeCell(product),
			strconv.FormatInt(records, 10), list.String(), actual.String(), voucher.String()}); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the lines of bill %d: %w", b.ID, err)
	}
	cw.Flush()
	return cw.Error()
}

// CustomerBillsExport is a checked export of customer bill lines.
type CustomerBillsExport struct {
	s     *Service
	where string
	args  []any
	name  string
}

// PrepareCustomerBillsExport checks f as CustomerBills does (scope, month)
// and returns the export to write.
func (s *Service) PrepareCustomerBillsExport(ctx context.Context, f CustomerBillFilter) (*CustomerBillsExport, error) {
	q, args, err := s.customerBillsWhere(ctx, f)
	if err != nil {
		return nil, err
	}
	name := "customer-bills"
	if f.Month != nil {
		name += "-" + f.Month.String()
	}
	return &CustomerBillsExport{s: s, where: q, args: args, name: name + ".csv"}, nil
}

// Filename is the download name.
func (e *CustomerBillsExport) Filename() string { return e.name }

// WriteCSV writes one row per customer bill line, streamed from a cursor;
// kind says whether it is a usage line or a voucher deduction (last, so the
// columns before it keep their places).
func (e *CustomerBillsExport) WriteCSV(ctx context.Context, w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"invoice_number", "bill_id", "partner_id", "customer_id", "customer_name", "month", "status",
		"for_month", "adjustment", "product_code", "list", "percent", "amount", "bill_total", "kind"}); err != nil {
		return err
	}
	rows, err := e.s.st.DB.WithContext(ctx).Raw(`SELECT b.id, b.partner_id, b.customer_id, c.name, b.month, b.status, b.total,
			l.for_month, l.product_code, l.list, l.percent, l.amount, l.kind
		FROM customer_bills b JOIN customer_bill_lines l ON l.bill_id = b.id JOIN accounts c ON c.id = b.customer_id
		WHERE `+e.where+` ORDER BY b.month DESC, b.id, l.for_month <> b.month, l.for_month, l.product_code, l.kind <> 'USAGE'`, e.args...).Rows()
	if err != nil {
		return fmt.Errorf("read customer bills: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var b CustomerBill
		var name, product, kind string
		var forMonth int
		var list, percent, amount decimal.Decimal
		if err := rows.Scan(&b.ID, &b.PartnerID, &b.CustomerID, &name, &b.Month, &b.Status, &b.Total, &forMonth, &product, &list, &percent, &amount, &kind); err != nil {
			return fmt.Errorf("read customer bills: %w", err)
		}
		if err := cw.Write([]string{b.Number(), b.GlobalID(), ids.Encode(accounts.TypeAccount, b.PartnerID), ids.Encode(accounts.TypeAccount, b.CustomerID),
			expenditures.SafeCell(name), models.MonthOfKey(b.Month).String(), string(b.Status), models.MonthOfKey(forMonth).String(),
			strconv.FormatBool(forMonth != b.Month), expenditures.SafeCell(product), list.String(), percent.String(),
			amount.StringFixed(2), b.Total.StringFixed(2), kind}); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read customer bills: %w", err)
	}
	cw.Flush()
	return cw.Error()
}

// Invoice returns the invoice of customer bill id (which the caller may
// see, else NOT_FOUND) in locale ("" or en-US, zh-CN): the partner as
// seller, the customer as buyer, in the customer's currency.
func (s *Service) Invoice(ctx context.Context, id int64, locale string) (*invoice.Invoice, error) {
	if locale == "" {
		locale = invoice.LocaleEnUS
	}
	if locale != invoice.LocaleEnUS && locale != invoice.LocaleZhCN {
		return nil, apperr.Invalid("locale", "%q is not one of en-US, zh-CN", apperr.Clip(locale))
	}
	b, err := s.CustomerBill(ctx, id)
	if err != nil {
		return nil, err
	}
	lines, err := s.CustomerLines(ctx, []int64{b.ID})
	if err != nil {
		return nil, err
	}
	parties, err := s.accounts.GetMany(accounts.SystemContext(ctx), []int64{b.PartnerID, b.CustomerID})
	if err != nil {
		return nil, err
	}
	seller, buyer := parties[b.PartnerID], parties[b.CustomerID]
	if seller == nil || buyer == nil {
		return nil, fmt.Errorf("invoice %d: its parties are missing", b.ID)
	}
	inv := &invoice.Invoice{Number: b.Number(), Month: models.MonthOfKey(b.Month).String(), Status: string(b.Status), Locale: locale,
		Currency: buyer.Currency, Seller: party(seller), Buyer: party(buyer), ListTotal: b.ListTotal, Total: b.Total}
	if b.Status == StatusIssued {
		inv.IssuedAt = b.GeneratedAt
	}
	for _, l := range lines[b.ID] {
		line := invoice.Line{ProductCode: l.ProductCode, Kind: invoice.KindUsage, List: l.List, Percent: l.Percent, Amount: l.Amount}
		if l.ForMonth != b.Month {
			line.Kind, line.ForMonth = invoice.KindAdjustment, models.MonthOfKey(l.ForMonth).String()
		}
		// A voucher line of an earlier month keeps that month: its kind
		// says it is a deduction, its month which usage it deducts from.
		if l.Kind == LineVoucher {
			line.Kind = invoice.KindVoucher
		}
		inv.Lines = append(inv.Lines, line)
	}
	return inv, nil
}

func party(a *models.Account) invoice.Party {
	p := invoice.Party{Name: a.Name}
	if a.Email != nil {
		p.Email = *a.Email
	}
	if a.Phone != nil {
		p.Phone = *a.Phone
	}
	return p
}
